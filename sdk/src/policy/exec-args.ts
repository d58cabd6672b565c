import path from 'node:path';

/**
 * Which arguments a granted command may run with. A manifest declares commands
 * (`capabilities.exec.commands`) and, per command, the argument lists the plugin
 * runs it with (`capabilities.exec.args`): without them, `systemctl` granted for a
 * reload would run `systemctl` with anything. A config-derived command (a field
 * marked `x-certctl-command`) runs exactly as the operator configured it, or, when
 * the plugin's schema says so (`"x-certctl-command": { "args": [...] }`), as
 * configured followed by one of the listed argument lists (a tool such as keytool
 * that the plugin drives with arguments of its own).
 *
 * An argument list is matched position by position and must have the same length:
 * each position is a literal string, `{ "regex": "..." }` matching the whole
 * argument (anchored; JavaScript syntax, unicode mode), or `{ "path": "read" }` /
 * `{ "path": "write" }`: an absolute, normalised path inside the paths granted for
 * this call (the fs capability's: the manifest's plus the instance's
 * `x-certctl-path` fields; "read" also admits the deploy's key file).
 *
 * A configured argv whose command the manifest declares with argument lists must
 * satisfy them as well (configCommandProblem): a config names which declared
 * command line to run, it does not widen what the command may be run with.
 */

export type PathAccess = 'read' | 'write';
export type ExecArgMatcher = string | { regex: string } | { path: PathAccess };
/**
 * Whether `arg` may stand for a `{ "path": access }` position: the caller's view of the
 * call's granted paths (broker-rules pathArgCheck). Absent: no path position matches.
 */
export type PathArgCheck = (arg: string, access: PathAccess) => boolean;
/** One allowed argument list (after the command). */
export type ExecArgRule = ExecArgMatcher[];

/** A command a call may run; `args` null: any arguments (a manifest command declared without argument lists). */
export interface ExecGrant {
  command: string;
  args: ExecArgRule[] | null;
}

export const EXEC_RULE_LIMITS = { maxRules: 64, maxRuleLength: 64, maxRegexLength: 512 } as const;

/** Why `rules` is not a list of argument lists, or null. */
export function execArgRulesProblem(rules: unknown): string | null {
  if (!Array.isArray(rules) || rules.length > EXEC_RULE_LIMITS.maxRules) return `argument lists must be an array of at most ${EXEC_RULE_LIMITS.maxRules} lists`;
  for (const rule of rules) {
    if (!Array.isArray(rule) || rule.length > EXEC_RULE_LIMITS.maxRuleLength) return `an argument list must be an array of at most ${EXEC_RULE_LIMITS.maxRuleLength} entries`;
    for (const m of rule) {
      if (typeof m === 'string') {
        if (m.includes('\0')) return 'a literal argument must not contain NUL';
        continue;
      }
      const keys = m && typeof m === 'object' && !Array.isArray(m) ? Object.keys(m) : [];
      if (keys.length === 1 && keys[0] === 'path' && (m.path === 'read' || m.path === 'write')) continue;
      if (keys.length !== 1 || keys[0] !== 'regex' || typeof m.regex !== 'string' || !m.regex || m.regex.length > EXEC_RULE_LIMITS.maxRegexLength) {
        return 'an argument is a literal string or one of { "regex": "..." }, { "path": "read" | "write" }';
      }
      try {
        new RegExp(m.regex, 'u');
      } catch (err) {
        return `argument pattern ${JSON.stringify(m.regex)} is not a valid regular expression: ${(err as Error).message}`;
      }
    }
  }
  return null;
}

const compiled = new Map<string, RegExp>();
function wholeMatch(pattern: string, value: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    // Compiled alone first: a pattern that is not a regular expression by itself (`a)|(b`)
    // would otherwise close the anchoring group and match in part. Throws: no match.
    new RegExp(pattern, 'u');
    re = new RegExp(`^(?:${pattern})$`, 'u');
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re.test(value);
}

/** Whether one position allows `value`. A malformed matcher allows nothing. */
function matcherAllows(m: ExecArgMatcher, value: string, pathOk?: PathArgCheck): boolean {
  if (typeof m === 'string') return m === value;
  if (m && typeof m === 'object' && 'path' in m) return (m.path === 'read' || m.path === 'write') && Boolean(pathOk?.(value, m.path));
  try {
    return typeof m?.regex === 'string' && wholeMatch(m.regex, value);
  } catch {
    return false;
  }
}

/** Whether `args` is one of the allowed lists (null: any arguments). A malformed rule matches nothing; a path position needs `pathOk`. */
export function argsAllowed(rules: readonly ExecArgRule[] | null, args: readonly string[], pathOk?: PathArgCheck): boolean {
  if (rules === null) return true;
  if (!Array.isArray(rules)) return false;
  return rules.some((rule) => Array.isArray(rule) && rule.length === args.length && rule.every((m, i) => matcherAllows(m, args[i], pathOk)));
}

/** A manifest's exec capability as grants: each declared command with its argument lists (none listed: any). */
export function manifestExecGrants(exec: { commands?: readonly string[]; args?: Readonly<Record<string, ExecArgRule[]>> } | undefined): ExecGrant[] {
  const args = exec?.args ?? {};
  return (exec?.commands ?? []).filter((c) => typeof c === 'string').map((command) => ({
    command,
    // An entry that is not a list (a manifest that skipped the install check) allows nothing.
    args: Object.prototype.hasOwnProperty.call(args, command) ? (Array.isArray(args[command]) ? args[command] : []) : null,
  }));
}

/**
 * The argument lists the manifest declares for the command a configured argv
 * names (its first element, matched as a resolved absolute path), or null when
 * it declares none or the command is not one of its own.
 */
export function declaredArgRules(grants: readonly ExecGrant[], command: unknown): ExecArgRule[] | null {
  if (typeof command !== 'string' || !path.isAbsolute(command)) return null;
  const resolved = path.resolve(command);
  return grants.find((g) => path.resolve(g.command) === resolved)?.args ?? null;
}

/**
 * The grant a configured argv gives: exactly that argv, or (schema keyword
 * `{ "args": [...] }`) that argv followed by one of the plugin's argument lists.
 */
export function configCommandGrant(argv: readonly string[], keyword: unknown): ExecGrant {
  const [command, ...fixed] = argv;
  const extra = keyword && typeof keyword === 'object' && Array.isArray((keyword as { args?: unknown }).args) ? ((keyword as { args: ExecArgRule[] }).args) : null;
  return { command, args: extra ? extra.map((rule) => [...fixed, ...rule]) : [[...fixed]] };
}

/**
 * Why a configured argv may not run although its command is granted, or null: when the
 * manifest declares argument lists for the command (`manifestRules`, null: none), every
 * command line the config grants (configCommandGrant) must be one of them: the configured
 * arguments match a list's first positions and the plugin's own list (an `{ args }`
 * mark's) is that list's remaining positions, matcher for matcher.
 */
export function configCommandProblem(argv: readonly string[], keyword: unknown, manifestRules: readonly ExecArgRule[] | null, pathOk?: PathArgCheck): string | null {
  if (manifestRules === null) return null;
  const [command, ...fixed] = argv;
  const extra = configCommandGrant(argv, keyword).args!.map((rule) => rule.slice(fixed.length));
  const covered = (tail: ExecArgRule) => manifestRules.some((m) => Array.isArray(m) && m.length === fixed.length + tail.length
    && fixed.every((a, i) => matcherAllows(m[i], a, pathOk))
    && tail.every((x, j) => JSON.stringify(x) === JSON.stringify(m[fixed.length + j])));
  if (extra.every(covered)) return null;
  return `${command} ${JSON.stringify(fixed).slice(0, 200)}: the plugin's manifest allows ${command} only with its argument lists (capabilities.exec.args)`;
}

/** Why a schema's `x-certctl-command` value is unusable (true, or { args: [...] }), or null. */
export function commandKeywordProblem(keyword: unknown): string | null {
  if (keyword === true) return null;
  if (!keyword || typeof keyword !== 'object' || Array.isArray(keyword) || Object.keys(keyword).join() !== 'args') return 'x-certctl-command is true or { "args": [argument lists] }';
  return execArgRulesProblem((keyword as { args: unknown }).args);
}

/** Why a manifest's exec capability is unusable beyond its schema (argument lists of undeclared commands, bad patterns), or null. */
export function manifestExecProblem(exec: { commands?: readonly string[]; args?: Readonly<Record<string, unknown>> } | undefined): string | null {
  for (const [command, rules] of Object.entries(exec?.args ?? {})) {
    if (!(exec?.commands ?? []).includes(command)) return `exec.args names ${command}, which exec.commands does not declare`;
    const problem = execArgRulesProblem(rules);
    if (problem) return `exec.args for ${command}: ${problem}`;
  }
  return null;
}

/**
 * Grants as a manifest-shaped exec capability (commands plus per-command argument
 * lists), allowing what any of them allows: a command granted once with any
 * arguments keeps any arguments.
 */
export function execCapabilityOf(grants: readonly ExecGrant[]): { commands: string[]; args: Record<string, ExecArgRule[]> } {
  const commands = [...new Set(grants.map((g) => g.command))];
  const args: Record<string, ExecArgRule[]> = {};
  for (const c of commands) {
    const mine = grants.filter((g) => g.command === c);
    if (mine.every((g) => g.args !== null)) args[c] = mine.flatMap((g) => g.args!);
  }
  return { commands, args };
}

/** The first unusable `x-certctl-command` mark in a config schema (through properties and items), or null. */
export function configSchemaCommandProblem(schema: unknown, at = '', depth = 0): string | null {
  if (!schema || typeof schema !== 'object' || depth > 16) return null;
  const node = schema as Record<string, unknown>;
  if ('x-certctl-command' in node) {
    const problem = commandKeywordProblem(node['x-certctl-command']);
    if (problem) return `configSchema${at}: ${problem}`;
  }
  for (const [name, sub] of Object.entries((node.properties as Record<string, unknown>) ?? {})) {
    const problem = configSchemaCommandProblem(sub, `${at}/${name}`, depth + 1);
    if (problem) return problem;
  }
  return configSchemaCommandProblem(node.items, `${at}/items`, depth + 1);
}
