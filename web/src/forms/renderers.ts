import { and, isDateControl, isDateTimeControl, isEnumControl, isIntegerControl, isNumberControl, isOneOfEnumControl, isStringControl, isTimeControl, not, or, rankWith, schemaMatches } from '@jsonforms/core';
import { vanillaRenderers } from '@jsonforms/vue-vanilla';
import { markRaw } from 'vue';
import InputControl from './InputControl.vue';
import SecretControl from './SecretControl.vue';
import { isSecretSchema } from './schema-utils';

/** The vanilla renderer set plus our write-only secret control and keystroke-committing inputs, ranked above the plain ones. */
export const formRenderers = markRaw([
  ...vanillaRenderers,
  { tester: rankWith(10, and(isStringControl, schemaMatches((s) => isSecretSchema(s)))), renderer: SecretControl },
  {
    tester: rankWith(3, or(
      and(isStringControl, not(or(isEnumControl, isOneOfEnumControl, isDateControl, isDateTimeControl, isTimeControl))),
      isIntegerControl,
      isNumberControl,
    )),
    renderer: InputControl,
  },
]);
