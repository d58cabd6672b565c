import { and, isStringControl, rankWith, schemaMatches } from '@jsonforms/core';
import { vanillaRenderers } from '@jsonforms/vue-vanilla';
import { markRaw } from 'vue';
import SecretControl from './SecretControl.vue';
import { isSecretSchema } from './schema-utils';

/** The vanilla renderer set plus our write-only secret control, ranked above the plain string one. */
export const formRenderers = markRaw([
  ...vanillaRenderers,
  { tester: rankWith(10, and(isStringControl, schemaMatches((s) => isSecretSchema(s)))), renderer: SecretControl },
]);
