import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { Logger } from 'pino';
import { isSecretField, type JsonSchemaObject, type PluginCapabilities } from '@certctl/sdk';
import { configuredCommandProblem } from '@certctl/sdk/policy';

type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as unknown as AddFormats;

/**
 * An ajv for plugin config schemas, with the kernel's settings (strict, formats,
 * defaults, no coercion). Each catalog gets its own instance so a plugin schema's
 * `$id` or a half-compiled bad schema cannot collide with the API's schemas or
 * with another kernel in the same process (tests boot several).
 */
export function createConfigAjv(log?: Logger): Ajv {
  const warn = (...args: unknown[]) => log?.warn({ detail: args.map(String).join(' ') }, 'plugin config schema warning');
  const ajv = new Ajv({
    allErrors: true, strict: true, coerceTypes: false, useDefaults: true, allowUnionTypes: true,
    logger: { log: () => {}, warn, error: warn },
  });
  addFormats(ajv);
  ajv.addKeyword({ keyword: 'x-secret', schemaType: 'boolean' });
  ajv.addKeyword({ keyword: 'x-order', schemaType: 'number' });
  // Config fields whose values widen the instance's grants, because the operator chose them:
  // a file path the agent may write (x-certctl-path), a command argv it may run
  // (x-certctl-command), and a URL whose host the plugin may fetch (x-certctl-url).
  ajv.addKeyword({ keyword: 'x-certctl-path', schemaType: 'boolean' });
  // true: exactly the configured argv; { args: [...] }: the argv followed by one of the plugin's argument lists.
  ajv.addKeyword({ keyword: 'x-certctl-command', schemaType: ['boolean', 'object'] });
  ajv.addKeyword({ keyword: 'x-certctl-url', schemaType: 'boolean' });
  ajv.addVocabulary(['example']);
  return ajv;
}

const SUBSCHEMA_KEYS = ['items', 'additionalItems', 'additionalProperties', 'contains', 'not', 'if', 'then', 'else', 'propertyNames', 'unevaluatedProperties', 'unevaluatedItems'];
const SUBSCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SUBSCHEMA_MAPS = ['patternProperties', 'dependentSchemas', '$defs', 'definitions'];

const asObject = (v: unknown): JsonSchemaObject | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as JsonSchemaObject) : null);

/**
 * Secrets are split from the config by walking `properties` only (see
 * splitSecrets), so a secret marker anywhere else (array items, anyOf branches,
 * $defs) would leave that value in clear text. Returns the schema paths of such
 * markers; a plugin with any is refused.
 */
export function misplacedSecretMarkers(schema: JsonSchemaObject): string[] {
  const found: string[] = [];
  const walk = (node: JsonSchemaObject, at: string, onPropertyPath: boolean) => {
    if (isSecretField(node)) {
      // A secret property is encrypted as a whole value, so nothing below it matters.
      if (onPropertyPath && at !== '') return;
      found.push(at || '/');
    }
    const props = asObject(node.properties);
    if (props) for (const [name, sub] of Object.entries(props)) { const s = asObject(sub); if (s) walk(s, `${at}/properties/${name}`, onPropertyPath); }
    for (const key of SUBSCHEMA_KEYS) { const s = asObject(node[key]); if (s) walk(s, `${at}/${key}`, false); }
    for (const key of SUBSCHEMA_LISTS) {
      const list = node[key];
      if (Array.isArray(list)) list.forEach((sub, i) => { const s = asObject(sub); if (s) walk(s, `${at}/${key}/${i}`, false); });
    }
    for (const key of SUBSCHEMA_MAPS) {
      const map = asObject(node[key]);
      if (map) for (const [name, sub] of Object.entries(map)) { const s = asObject(sub); if (s) walk(s, `${at}/${key}/${name}`, false); }
    }
  };
  walk(schema, '', true);
  return found;
}

/** Paths (dot-separated) of the secret fields a config schema declares. */
export function secretFieldPaths(schema: JsonSchemaObject, prefix = ''): string[] {
  const props = asObject(schema.properties);
  if (!props) return [];
  return Object.entries(props).flatMap(([name, sub]) => {
    const s = asObject(sub);
    if (!s) return [];
    return isSecretField(s) ? [`${prefix}${name}`] : secretFieldPaths(s, `${prefix}${name}.`);
  });
}

/**
 * A copy of the schema for clients: `default` is dropped from secret fields (and
 * from anything below them) so a schema never carries a secret value.
 */
export function publicConfigSchema(schema: JsonSchemaObject): JsonSchemaObject {
  const strip = (node: unknown, inSecret: boolean): unknown => {
    if (Array.isArray(node)) return node.map((n) => strip(n, inSecret));
    const obj = asObject(node);
    if (!obj) return node;
    const secret = inSecret || isSecretField(obj);
    const out: JsonSchemaObject = {};
    for (const [k, v] of Object.entries(obj)) {
      if (secret && (k === 'default' || k === 'examples' || k === 'example')) continue;
      if (k === 'properties' && asObject(v)) {
        out[k] = Object.fromEntries(Object.entries(v as JsonSchemaObject).map(([name, sub]) => [name, strip(sub, secret)]));
      } else out[k] = typeof v === 'object' && v !== null ? strip(v, secret) : v;
    }
    return out;
  };
  return strip(schema, false) as JsonSchemaObject;
}

/**
 * A validator that, once the schema passes, also refuses a configured command line
 * (`x-certctl-command`) that the manifest's argument lists for that command refuse
 * (@certctl/sdk/policy configuredCommandProblem), naming the field: a config picks
 * one of the command lines the plugin declares, it cannot widen them. The agent
 * checks again on every call; this answers the operator when the config is saved.
 */
function withCommandCheck(validate: ValidateFunction, schema: JsonSchemaObject, capabilities: PluginCapabilities): ValidateFunction {
  const checked = ((data: unknown) => {
    if (!validate(data)) {
      checked.errors = validate.errors;
      return false;
    }
    const refused = configuredCommandProblem(capabilities, schema, data);
    checked.errors = refused ? [{ instancePath: refused.at, schemaPath: '#/x-certctl-command', keyword: 'x-certctl-command', params: {}, message: refused.problem }] : null;
    return !refused;
  }) as ValidateFunction;
  return Object.assign(checked, { schema: validate.schema, schemaEnv: validate.schemaEnv });
}

/** Compiles a config schema (with the manifest's capabilities: configured command lines are checked too), or says why it cannot be used. */
export function compileConfigSchema(ajv: Ajv, schema: JsonSchemaObject, capabilities?: PluginCapabilities): { validate: ValidateFunction } | { reason: string } {
  const misplaced = misplacedSecretMarkers(schema);
  if (misplaced.length) {
    return { reason: `configSchema marks secrets outside plain object properties (${misplaced.join(', ')}); they could not be encrypted` };
  }
  try {
    // A copy: ajv keeps a reference, and the manifest object stays the caller's.
    const validate = ajv.compile(structuredClone(schema));
    return { validate: capabilities?.exec?.args ? withCommandCheck(validate, schema, capabilities) : validate };
  } catch (err) {
    return { reason: `configSchema is not a valid strict JSON schema: ${(err as Error).message}` };
  }
}
