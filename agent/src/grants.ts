import path from 'node:path';
import type { PluginCapabilities } from '@certctl/sdk';
import { argvProblem } from '@certctl/sdk/deploy';
import { agentCommandProblem, alwaysRefusedPath, configCommandGrant, configCommandProblem, configOriginRule, declaredArgRules, manifestExecGrants, markedFields, markedValues, pathArgCheck, pathWithin as within, type ExecGrant } from '@certctl/sdk/policy';

/**
 * What one target-plugin call on this agent may touch. The plugin's manifest
 * (installed on this host) and the target instance's config (sent by the control
 * plane: fields marked `x-certctl-path`, `x-certctl-command`, `x-certctl-url`)
 * ask; the agent grants only what its own rules allow, so neither a config edited
 * by anyone with target.manage nor a compromised control plane can make the agent
 * write system files or run a shell. Exactly this holds:
 *
 * - Files: read/write/remove at or below a requested path only when it lies in
 *   CERTCTL_AGENT_ALLOWED_PATHS (default: DEFAULT_AGENT_ALLOWED_PATHS of
 *   @certctl/sdk/policy, the usual certificate directories); a requested folder
 *   that contains allowed ones is narrowed to them. Never: the agent's key and
 *   state directories, nor alwaysRefusedPath()'s list (/etc/passwd, /etc/shadow,
 *   /etc/sudoers*, /etc/cron*, any .ssh directory, /root, /boot, /proc, /sys,
 *   /dev...), whatever the allowlist says. The broker checks the real path of
 *   every operation again, so a symlink cannot lead out.
 * - The deploy's key file: read only, for this call.
 * - Commands: an exact absolute path declared by the manifest
 *   (capabilities.exec.commands) or listed in CERTCTL_AGENT_ALLOWED_COMMANDS; a
 *   config may only pick among those. Shells and interpreters (sh, bash, env,
 *   python, perl, awk...) only when CERTCTL_AGENT_ALLOWED_COMMANDS lists that
 *   exact path. Arguments are always an argv array, never a shell line, and only
 *   the granted ones: the manifest's argument lists for its commands
 *   (capabilities.exec.args), and for a configured argv exactly that argv (or it
 *   followed by the lists its schema field names), which must itself be one of
 *   the manifest's lists when the manifest declares lists for that command. An
 *   argument position `{ "path": ... }` admits only this call's granted paths.
 * - http.fetch: the manifest's hosts plus the origin of each config URL; config
 *   never grants cloud metadata or unspecified addresses (configOriginRule).
 */
export interface CallGrants {
  /** Read and write (and remove) at or below these absolute paths. */
  fsWrite: string[];
  /** Read only (the deploy's key file). */
  fsRead: string[];
  /** Exact absolute command paths, each with the argument lists it may run with (null: any). */
  exec: ExecGrant[];
  /** Host rules for http.fetch (@certctl/sdk/policy syntax). */
  httpHosts: string[];
  kv: boolean;
  /** What was asked for but not granted, and why (logged by the caller). */
  refused: string[];
}

export interface LocalGrantPolicy {
  /** CERTCTL_AGENT_ALLOWED_PATHS, or DEFAULT_AGENT_ALLOWED_PATHS when it is unset. */
  allowedPaths: string[];
  /** CERTCTL_AGENT_ALLOWED_COMMANDS (empty: only the manifests' commands). */
  allowedCommands: string[];
  /** Directories no plugin may touch (key store, agent state). */
  protectedDirs: string[];
}

const MAX_PATH = 4096;

/** Why `p` cannot be a granted path (a file or a folder), or null when it can. */
export function pathProblem(p: unknown): string | null {
  if (typeof p !== 'string' || !p) return 'a path must be a non-empty string';
  if (p.length > MAX_PATH) return 'the path is too long';
  if (p.includes('\0')) return 'the path contains NUL';
  if (/[\r\n]/.test(p)) return 'the path contains a line break';
  if (!path.isAbsolute(p)) return `the path ${JSON.stringify(p)} is not absolute`;
  if (p.split(/[\\/]+/).includes('..')) return `the path ${JSON.stringify(p)} contains ".."`;
  if (path.resolve(p) === path.parse(p).root) return 'the file-system root cannot be granted';
  return null;
}

/**
 * Why `cmd` cannot be a granted command, or null when it can: the deploy pipeline's
 * own rule (an absolute path of letters, digits and `_ . + / -` only: no spaces,
 * quotes or shell characters), checked again here because the agent trusts no plugin.
 */
export function commandProblem(cmd: unknown): string | null {
  return typeof cmd === 'string' && cmd.includes('\0') ? 'the command path contains NUL' : argvProblem([cmd], 'command');
}

/**
 * A URL as an http.fetch host rule: its origin, and only that. The same rule as the
 * kernel's config grants (@certctl/sdk/policy configOriginRule): cloud metadata and
 * unspecified addresses are refused however the URL spells them.
 */
export function urlHostRule(raw: unknown): string | { problem: string } {
  const r = configOriginRule(raw);
  return 'rule' in r ? r.rule : r;
}

/** Narrows granted paths to the allowlist: a path inside an allowed root stays; an allowed root inside a granted path replaces it. */
function intersectPaths(granted: string[], allowed: string[], refused: string[]): string[] {
  const out: string[] = [];
  for (const g of granted) {
    if (allowed.some((a) => within(a, g))) out.push(g);
    else {
      const narrower = allowed.filter((a) => within(g, a));
      if (narrower.length) out.push(...narrower);
      else refused.push(`fs ${g}: outside the agent's allowed paths (CERTCTL_AGENT_ALLOWED_PATHS)`);
    }
  }
  return out;
}

const unique = (xs: string[]) => [...new Set(xs)];

export interface GrantInput {
  /** The manifest's capabilities (first-party plugins get what they ask for). */
  manifest: PluginCapabilities;
  configSchema: unknown;
  /** The target instance's config as the control plane sent it. */
  config: Record<string, unknown>;
  /** This deploy's key file (read only); absent for calls without a key (rollback). */
  keyPath?: string;
  policy: LocalGrantPolicy;
}

export function deriveCallGrants(input: GrantInput): CallGrants {
  const refused: string[] = [];
  const { policy } = input;

  const paths: string[] = [];
  const addPath = (p: unknown, from: string) => {
    const problem = pathProblem(p);
    if (problem) return void refused.push(`fs (${from}): ${problem}`);
    const abs = path.resolve(p as string);
    if (policy.protectedDirs.some((d) => within(d, abs))) return void refused.push(`fs ${abs}: inside the agent's own key or state directory`);
    const never = alwaysRefusedPath(abs);
    if (never) return void refused.push(`fs ${never}`);
    paths.push(abs);
  };
  for (const p of input.manifest.fs?.paths ?? []) addPath(p, 'manifest');
  for (const p of markedValues(input.configSchema, input.config, 'x-certctl-path')) addPath(p, 'config');

  const fsWrite = unique(intersectPaths(unique(paths), policy.allowedPaths, refused));
  const fsRead: string[] = [];
  if (input.keyPath !== undefined) {
    const problem = pathProblem(input.keyPath);
    if (problem) refused.push(`key file: ${problem}`);
    else fsRead.push(path.resolve(input.keyPath));
  }

  const commands: ExecGrant[] = [];
  const manifestCommands = (input.manifest.exec?.commands ?? []).filter((c) => typeof c === 'string').map((c) => path.resolve(c));
  const addCommand = (grant: ExecGrant, from: string) => {
    const problem = commandProblem(grant.command);
    if (problem) return void refused.push(`exec (${from}): ${problem}`);
    const cmd = path.resolve(grant.command);
    const refusal = agentCommandProblem(cmd, { manifestCommands, allowedCommands: policy.allowedCommands });
    if (refusal) return void refused.push(`exec (${from}): ${refusal}`);
    commands.push({ command: cmd, args: grant.args });
  };
  // The manifest's commands with their argument lists; a configured argv runs exactly as configured.
  const manifestGrants = manifestExecGrants(input.manifest.exec);
  for (const g of manifestGrants) addCommand(g, 'manifest');
  // A command the manifest declares with argument lists keeps them when a config names it:
  // to run it otherwise, the agent's administrator lists another command (a wrapper script).
  const pathOk = pathArgCheck({ write: fsWrite, read: fsRead });
  for (const { value: argv, mark } of markedFields(input.configSchema, input.config, 'x-certctl-command')) {
    if (!Array.isArray(argv) || !argv.length || argv.some((a) => typeof a !== 'string')) {
      refused.push('exec (config): a command must be a non-empty argv array of strings');
      continue;
    }
    const problem = configCommandProblem(argv as string[], mark, declaredArgRules(manifestGrants, argv[0]), pathOk);
    if (problem) refused.push(`exec (config): ${problem}`);
    else addCommand(configCommandGrant(argv as string[], mark), 'config');
  }

  const hosts: string[] = [...(input.manifest.http?.hosts ?? [])];
  for (const u of markedValues(input.configSchema, input.config, 'x-certctl-url')) {
    const rule = urlHostRule(u);
    if (typeof rule === 'string') hosts.push(rule);
    else refused.push(`http (config): ${rule.problem}`);
  }

  return {
    fsWrite,
    fsRead,
    exec: commands,
    httpHosts: unique(hosts),
    kv: Boolean(input.manifest.kv),
    refused,
  };
}

/** Parses an allowlist variable: null when absent or empty (the caller picks the default); every entry must be a usable absolute path. */
export function parseAllowlist(raw: string | undefined, name: string, check: (v: string) => string | null): string[] | null {
  if (raw === undefined || raw.trim() === '') return null;
  const entries = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const e of entries) {
    const problem = check(e);
    if (problem) throw new Error(`${name}: ${problem}`);
  }
  return entries.map((e) => path.resolve(e));
}
