import { pathArgCheck } from './broker-rules.js';
import { configCommandProblem, declaredArgRules, manifestExecGrants, type ExecArgRule } from './exec-args.js';

/**
 * Config fields that widen an instance's grants because the operator chose them
 * (`x-certctl-path`, `x-certctl-command`, `x-certctl-url`), found by walking a
 * plugin's config schema alongside a config. The agent derives a call's grants from
 * them (agent/src/grants.ts); the kernel checks configured command lines with them
 * when a config is saved, so both read the same fields the same way.
 */

export type GrantKeyword = 'x-certctl-path' | 'x-certctl-command' | 'x-certctl-url';

type SchemaNode = Record<string, unknown>;
const asNode = (v: unknown): SchemaNode | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as SchemaNode) : null);

/** Config fields whose schema carries `keyword` (through object properties and array items): each value, the keyword's own value, and where (a JSON pointer into the config). */
export function markedFields(schema: unknown, value: unknown, keyword: GrantKeyword): { value: unknown; mark: unknown; at: string }[] {
  const out: { value: unknown; mark: unknown; at: string }[] = [];
  const walk = (node: SchemaNode | null, v: unknown, at: string, depth: number) => {
    if (!node || v === undefined || v === null || depth > 16) return;
    const mark = node[keyword];
    // A command field's mark may carry the argument lists the plugin adds ({ args }).
    if (mark === true || (keyword === 'x-certctl-command' && asNode(mark))) {
      // A command is one argv array; a path or URL field may also be a list of them.
      if (keyword === 'x-certctl-command' || !Array.isArray(v)) out.push({ value: v, mark, at });
      else out.push(...v.map((x, i) => ({ value: x, mark, at: `${at}/${i}` })));
      return;
    }
    const props = asNode(node.properties);
    const obj = asNode(v);
    if (props && obj) for (const [name, sub] of Object.entries(props)) walk(asNode(sub), obj[name], `${at}/${name}`, depth + 1);
    const items = asNode(node.items);
    if (items && Array.isArray(v)) v.forEach((item, i) => walk(items, item, `${at}/${i}`, depth + 1));
  };
  walk(asNode(schema), value, '', 0);
  return out;
}

/** Values of the config fields whose schema carries `keyword`. */
export function markedValues(schema: unknown, value: unknown, keyword: GrantKeyword): unknown[] {
  return markedFields(schema, value, keyword).map((f) => f.value);
}

/**
 * The first configured command line that the manifest's argument lists refuse
 * (configCommandProblem), with where it is in the config; null when there is none.
 * `{ "path": ... }` positions admit the manifest's fs paths and the config's
 * `x-certctl-path` values as written: the agent narrows those to its own allowlist
 * and checks again on every call.
 */
export function configuredCommandProblem(
  capabilities: { fs?: { paths?: readonly string[] }; exec?: { commands?: readonly string[]; args?: Readonly<Record<string, ExecArgRule[]>> } } | undefined,
  schema: unknown,
  config: unknown,
): { at: string; problem: string } | null {
  const grants = manifestExecGrants(capabilities?.exec);
  if (!grants.some((g) => g.args !== null)) return null;
  const paths = [...(capabilities?.fs?.paths ?? []), ...markedValues(schema, config, 'x-certctl-path')].filter((p): p is string => typeof p === 'string');
  const pathOk = pathArgCheck({ write: paths });
  for (const { value, mark, at } of markedFields(schema, config, 'x-certctl-command')) {
    if (!Array.isArray(value) || !value.length || value.some((a) => typeof a !== 'string')) continue;
    const problem = configCommandProblem(value as string[], mark, declaredArgRules(grants, value[0]), pathOk);
    if (problem) return { at, problem };
  }
  return null;
}
