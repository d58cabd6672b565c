import crypto from 'node:crypto';
import type { DeployRequest, ExecResult, Json, Plugin, PluginCapabilities } from '../index.js';
import { agentCommandProblem, alwaysRefusedPath, configCommandGrant, configCommandProblem, declaredArgRules, execCapabilityOf, manifestExecGrants, pathArgCheck } from '../policy/index.js';
import type { Checks, ConformanceOptions } from './conformance.js';
import { PluginCallFailure } from './errors.js';
import { TARGET_CHAIN_CERT_PEM, TARGET_FIRST_CERT_PEM, TARGET_FIRST_KEY_PEM, TARGET_SECOND_CERT_PEM, TARGET_SECOND_KEY_PEM } from './target-fixtures.js';
import { createTestHost, type TestHost } from './test-host.js';

/**
 * The target half of the conformance suite. Each scenario runs in a fresh test
 * host that grants what the agent's broker would: the manifest's capabilities,
 * plus the paths and commands the instance config names (fields holding an
 * absolute path, argv arrays starting with one), plus the agent's key file.
 */

export interface TargetConformanceOptions {
  /** Config fields holding file paths (dot paths); by default, top-level strings that start with "/". */
  pathFields?: string[];
  /** Config fields holding command argvs; by default, top-level string arrays whose first element starts with "/". */
  commandFields?: string[];
  /** Commands a deploy with nothing to change may still run (read-only checks); reloads never. */
  readOnlyCommands?: string[];
  /**
   * Set (to where the real test lives) when a deploy cannot succeed in the in-memory host, e.g.
   * a binary keystore rewritten by a real tool: deploy is then held to its shape, and the
   * refusal checks still run.
   */
  realServerOnly?: string;
  /**
   * Commands the suite's agent allows beyond the manifest's (CERTCTL_AGENT_ALLOWED_COMMANDS).
   * A config command that is neither declared nor listed is refused, as on a real agent.
   */
  agentAllowedCommands?: string[];
}

const fingerprintOf = (pem: string) => new crypto.X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
const okExec = (): ExecResult => ({ exitCode: 0, stdout: '', stderr: '' });
const DEFAULT_KEY_PATH = '/etc/ssl/certctl/conformance.key';
const SECOND_KEY_PATH = '/etc/ssl/certctl/conformance-2.key';

const getAt = (config: Record<string, Json>, dotPath: string): Json | undefined =>
  dotPath.split('.').reduce<Json | undefined>((v, k) => (v && typeof v === 'object' && !Array.isArray(v) ? v[k] : undefined), config);
const setAt = (config: Record<string, Json>, dotPath: string, value: Json): Record<string, Json> => {
  const copy = structuredClone(config);
  const keys = dotPath.split('.');
  let node = copy as Record<string, Json>;
  for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, Json>;
  node[keys.at(-1)!] = value;
  return copy;
};

function fieldsOf(config: Record<string, Json>, t: TargetConformanceOptions) {
  const pathFields = t.pathFields ?? Object.keys(config).filter((k) => typeof config[k] === 'string' && (config[k] as string).startsWith('/'));
  const commandFields = t.commandFields ?? Object.keys(config).filter((k) => {
    const v = config[k];
    return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') && (v[0] as string).startsWith('/');
  });
  return { pathFields, commandFields };
}

/**
 * The grants the agent would give a call with this config (agent/src/grants.ts, with the
 * same @certctl/sdk/policy rules): the manifest's capabilities, the config-named paths
 * (never the always-refused ones such as /root or any .ssh directory), the config-named
 * commands that the manifest declares or `target.agentAllowedCommands` lists (a shell or
 * interpreter only from that list), and the key files.
 */
function agentGrants(base: PluginCapabilities, config: Record<string, Json>, t: TargetConformanceOptions, keyPaths: string[], configSchema: unknown): PluginCapabilities {
  const { pathFields, commandFields } = fieldsOf(config, t);
  const paths = pathFields.map((f) => getAt(config, f)).filter((v): v is string => typeof v === 'string' && !alwaysRefusedPath(v));
  const manifestCommands = base.exec?.commands ?? [];
  const allowedCommands = t.agentAllowedCommands ?? [];
  // A configured argv runs exactly as configured (or followed by the argument lists its schema field names).
  // A command the manifest declares with argument lists must be configured as one of them (configCommandProblem).
  const manifestGrants = manifestExecGrants(base.exec);
  const pathOk = pathArgCheck({ write: [...(base.fs?.paths ?? []), ...paths], read: keyPaths });
  const configured = commandFields.map((f) => ({ argv: getAt(config, f), mark: commandMark(configSchema, f) }))
    .filter((c): c is { argv: string[]; mark: unknown } => Array.isArray(c.argv) && c.argv.length > 0 && c.argv.every((a) => typeof a === 'string'))
    .filter((c) => !configCommandProblem(c.argv, c.mark, declaredArgRules(manifestGrants, c.argv[0]), pathOk))
    .map((c) => configCommandGrant(c.argv, c.mark));
  const commands = [...manifestGrants, ...configured]
    .filter((g) => g.command.startsWith('/') && !agentCommandProblem(g.command, { manifestCommands, allowedCommands }));
  return {
    ...base,
    fs: { paths: [...new Set([...(base.fs?.paths ?? []), ...paths, ...keyPaths])] },
    ...(commands.length || base.exec ? { exec: execCapabilityOf(commands) } : {}),
  };
}

/** The `x-certctl-command` mark of a (dot path) config field in the plugin's schema; true (exact argv) when unknown. */
function commandMark(schema: unknown, dotPath: string): unknown {
  let node = schema as Record<string, unknown> | undefined;
  for (const k of dotPath.split('.')) node = (node?.properties as Record<string, Record<string, unknown>> | undefined)?.[k];
  return node?.['x-certctl-command'] ?? true;
}

/** What every scenario shares. */
interface Env {
  checks: Checks;
  plugin: Record<string, unknown>;
  opts: ConformanceOptions;
  t: TargetConformanceOptions;
  config: Record<string, Json>;
  first: DeployRequest;
  second: DeployRequest;
  initialFiles: Record<string, string>;
  /** Targets that write through the agent's fs (the manifest asks for it) are held to what the files show. */
  fileBased: boolean;
  hostFor(files: Record<string, string>, over?: { config?: Record<string, Json>; exec?: ConformanceOptions['exec'] }): TestHost;
  deploy(name: string, host: TestHost, request: DeployRequest): Promise<Record<string, Json> | undefined>;
}

const filesOf = (h: TestHost) => Object.fromEntries(h.files);
const sameFiles = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

export async function targetChecks(checks: Checks, plugin: Plugin, opts: ConformanceOptions): Promise<void> {
  const t = opts.target ?? {};
  const config = structuredClone(opts.config ?? {});
  const first: DeployRequest = opts.deployRequest ?? { certificateId: 'mc-conformance', certificatePem: TARGET_FIRST_CERT_PEM, chainPem: [], keyPath: DEFAULT_KEY_PATH, fingerprintSha256: fingerprintOf(TARGET_FIRST_CERT_PEM) };
  const second: DeployRequest = { ...first, certificatePem: TARGET_SECOND_CERT_PEM, chainPem: [TARGET_CHAIN_CERT_PEM], keyPath: SECOND_KEY_PATH, fingerprintSha256: fingerprintOf(TARGET_SECOND_CERT_PEM) };
  const initialFiles = { ...(opts.files ?? {}) };
  initialFiles[first.keyPath] ??= TARGET_FIRST_KEY_PEM;
  initialFiles[SECOND_KEY_PATH] ??= TARGET_SECOND_KEY_PEM;
  const env: Env = {
    checks, plugin: plugin as unknown as Record<string, unknown>, opts, t, config, first, second, initialFiles,
    fileBased: Boolean(opts.grants?.fs),
    hostFor(files, over = {}) {
      const cfg = over.config ?? config;
      return createTestHost({ ...opts, config: cfg, files, kv: new Map(), grants: agentGrants(opts.grants ?? {}, cfg, t, [first.keyPath, SECOND_KEY_PATH], opts.manifest?.configSchema), exec: over.exec ?? opts.exec ?? okExec });
    },
    deploy: (name, host, request) => checks.call(name, host, 'deploy', request as unknown as Json),
  };

  if (t.realServerOnly) {
    // The effect cannot exist in memory (e.g. a binary keystore a real tool rewrites): hold deploy to its shape only.
    const r = await env.deploy('deploy: answers with a contract result', env.hostFor(initialFiles), first);
    if (r) checks.pass('deploy: answers with a contract result', `${String(r.status)}; deploy and rollback behaviour is tested against the real thing: ${t.realServerOnly}`);
  } else await behaviourChecks(env);
  await refusalChecks(env);
  const p = env.plugin;
  if (typeof p.validate === 'function' && (await checks.call('validate', env.hostFor(initialFiles), 'validate', {}))) checks.pass('validate: answers ok or a reason');
  if (typeof p.verify === 'function' && (await checks.call('verify', env.hostFor(initialFiles), 'verify', { fingerprintSha256: first.fingerprintSha256 }))) checks.pass('verify: answers success, failed or skipped');
}

async function behaviourChecks(env: Env): Promise<void> {
  const { checks, t, first, second, initialFiles } = env;
  // 1. A first deploy writes the certificate, and leaves the agent's key files alone.
  const host = env.hostFor(initialFiles);
  const r1 = await env.deploy('deploy: a first certificate', host, first);
  if (!r1) return;
  const hint = ' (a target that cannot deploy in the in-memory test host sets target.realServerOnly)';
  checks.expect('deploy: a first certificate is deployed and changes something', r1.status === 'deployed' && r1.changed === true ? null : `it answered ${JSON.stringify(r1)}${r1.status === 'failed' ? hint : ''}`);
  if (r1.status !== 'deployed') return;
  const certLine = first.certificatePem.split('\n')[1];
  const written = [...host.files].filter(([path, content]) => initialFiles[path] !== content);
  if (env.fileBased && fieldsOf(env.config, t).pathFields.length) {
    checks.expect('deploy: writes the certificate into the configured files', written.some(([, c]) => c.includes(certLine)) ? null : 'no configured file holds the certificate after the deploy');
  }
  checks.expect("deploy: leaves the agent's key files unchanged", [first.keyPath, SECOND_KEY_PATH].every((k) => host.files.get(k) === initialFiles[k]) ? null : 'a key file at keyPath was modified');
  const afterFirst = filesOf(host);
  const commandsOnDeploy = host.commands.length;

  // 2. The same certificate again: nothing changes, nothing reloads.
  host.commands.length = 0;
  const r2 = await env.deploy('deploy: the same certificate again', host, first);
  if (r2) {
    const ran = host.commands.filter((c) => !(t.readOnlyCommands ?? []).includes(c.command));
    checks.expect('deploy: the same certificate again answers changed:false', r2.status === 'deployed' && r2.changed === false ? null : `it answered ${JSON.stringify(r2)}`);
    checks.expect('deploy: the same certificate again runs no command (no reload)', ran.length ? `it ran ${ran.map((c) => [c.command, ...c.args].join(' ')).join('; ')}` : null);
    checks.expect('deploy: the same certificate again rewrites nothing', sameFiles(filesOf(host), afterFirst) ? null : 'the files changed');
  }

  // 3. A different certificate replaces the files; rollback brings the first back.
  const r3 = await env.deploy('deploy: a new certificate', host, second);
  if (r3) {
    const replaced = !env.fileBased || !sameFiles(filesOf(host), afterFirst);
    checks.expect('deploy: a new certificate replaces the files', r3.status === 'deployed' && r3.changed === true && replaced ? null : `it answered ${JSON.stringify(r3)}${replaced ? '' : ' but the files did not change'}`);
    if (typeof env.plugin.rollback === 'function') await rollbackChecks(env, host, r3, afterFirst);
  }

  // 4. A failing validate (the first command a deploy runs) restores the files.
  if (commandsOnDeploy === 0) {
    checks.pass('deploy: a failing validate command rolls back', 'the plugin runs no commands');
    return;
  }
  let calls = 0;
  const failing = env.hostFor(afterFirst, { exec: (c, a, o) => (++calls === 1 ? { exitCode: 1, stdout: '', stderr: 'conformance: configuration test failed' } : (env.opts.exec ?? okExec)(c, a, o)) });
  const r4 = await env.deploy('deploy: a failing validate command rolls back', failing, second);
  if (r4) {
    const restored = sameFiles(filesOf(failing), afterFirst);
    checks.expect('deploy: a failing validate command rolls back', r4.status === 'failed' && r4.rolledBack === true && restored ? null : `it answered ${JSON.stringify(r4)}; files restored: ${restored}`);
  }
}

async function rollbackChecks(env: Env, host: TestHost, deployed: Record<string, Json>, before: Record<string, string>): Promise<void> {
  const { checks } = env;
  if (typeof deployed.snapshotId !== 'string') {
    checks.fail('rollback: a changed deploy answers a snapshotId', 'no snapshotId in the result');
    return;
  }
  const rb = await checks.call('rollback: restores the previous files', host, 'rollback', { snapshotId: deployed.snapshotId });
  if (rb) checks.expect('rollback: restores the previous files', rb.ok === true && sameFiles(filesOf(host), before) ? null : `rollback answered ${JSON.stringify(rb)}; files restored: ${sameFiles(filesOf(host), before)}`);
  const unknown = await checks.call('rollback: an unknown snapshot answers a reason', host, 'rollback', { snapshotId: 'no-such-snapshot' });
  if (unknown) checks.expect('rollback: an unknown snapshot answers a reason', unknown.ok === false && typeof unknown.reason === 'string' ? null : `it answered ${JSON.stringify(unknown)}`);
}

/**
 * 5. Injection through the config: refused by the plugin's validation or the host, before anything
 * is written or run. Well-formed values that only the agent refuses (a shell, a path under /root)
 * cannot be caught by the plugin: for those (`byAgent`) the deploy must fail and leave the files
 * as they were, and the refused command must never run; the plugin's other commands may.
 */
async function refusalChecks(env: Env): Promise<void> {
  const { config, t } = env;
  const { pathFields, commandFields } = fieldsOf(config, t);
  const poisoned: [string, Record<string, Json>, byAgent?: boolean][] = [];
  for (const f of pathFields) {
    const v = String(getAt(config, f));
    poisoned.push([`${f} with ".."`, setAt(config, f, `${v.slice(0, v.lastIndexOf('/') + 1)}../../../etc/shadow`)]);
    poisoned.push([`${f} relative`, setAt(config, f, v.replace(/^\/+/, ''))]);
    poisoned.push([`${f} naming /root/.ssh/authorized_keys`, setAt(config, f, '/root/.ssh/authorized_keys'), true]);
  }
  for (const f of commandFields) {
    const argv = getAt(config, f) as string[];
    poisoned.push([`${f} with a shell command string`, setAt(config, f, [`${argv.join(' ')}; rm -rf /`])]);
    poisoned.push([`${f} as one string`, setAt(config, f, `${argv.join(' ')}; rm -rf /`)]);
    poisoned.push([`${f} with a relative command`, setAt(config, f, [argv[0].split('/').pop()!, ...argv.slice(1)])]);
    poisoned.push([`${f} running /bin/sh -c id`, setAt(config, f, ['/bin/sh', '-c', 'id']), true]);
  }
  for (const [what, cfg, byAgent] of poisoned) {
    const name = `refuses config: ${what}`;
    const h = env.hostFor(env.initialFiles, { config: cfg });
    let answer: string;
    try {
      const r = (await h.call('deploy', env.second as unknown as Json)) as Record<string, Json>;
      answer = r.status === 'failed' ? 'failed' : `answered ${JSON.stringify(r)}`;
    } catch (err) {
      answer = err instanceof PluginCallFailure ? 'failed' : `threw ${(err as Error).message}`;
    }
    const touched = !sameFiles(filesOf(h), env.initialFiles);
    if (byAgent) {
      const shell = h.commands.filter((c) => c.command === '/bin/sh');
      env.checks.expect(name, answer !== 'failed' ? `deploy ${answer}` : touched ? 'files were written' : shell.length ? 'it ran /bin/sh' : null);
      continue;
    }
    const problem = answer !== 'failed' ? `deploy ${answer}` : touched ? 'files were written' : h.commands.length ? `it ran ${h.commands.map((c) => c.command).join(', ')}` : null;
    if (!problem && typeof env.plugin.validateConfig === 'function') {
      const v = (await h.call('validateConfig', {}).catch(() => ({ ok: false }))) as Record<string, Json>;
      env.checks.expect(name, v.ok === false ? null : 'validateConfig answered ok');
    } else env.checks.expect(name, problem);
  }
}
