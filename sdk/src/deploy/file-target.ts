import { definePlugin, type DeployRequest, type DeployResult, type Json, type PluginContext, type TargetPlugin } from '../index.js';
import { checkArgv, checkPath, DeployConfigError } from './argv.js';
import { keyPairProblem } from './key-pair.js';
import { deployFiles, restoreSnapshot, type DeployCommand, type DeployFile } from './pipeline.js';
import { verifyEndpointProblem } from './schema.js';

/**
 * A whole target plugin for servers that read certificate files and are told to
 * reload (NGINX, Apache httpd, HAProxy, Postfix...): the plugin states which
 * config fields name files and commands and how the files are laid out; deploy,
 * rollback, validate and validateConfig come from the shared pipeline.
 */

export interface CommandField {
  /** The config field holding the argv. */
  field: string;
  /** Used when the config leaves the field out; null: no such step unless configured. A config value of null turns the step off. */
  default: string[] | null;
}

export interface FileTargetSpec {
  /** Config fields holding file paths, each required (true) or optional (false). */
  pathFields: Record<string, boolean>;
  validateCommand?: CommandField;
  reloadCommand?: CommandField;
  /** Whether the files include the private key (read from the agent's key file, DeployRequest.keyPath). */
  needsKey: boolean;
  /** The files to write for a certificate; `paths` holds the configured path fields (optional ones may be absent). */
  files(input: { request: DeployRequest; keyPem: string | null; paths: Record<string, string | undefined>; config: Readonly<Record<string, Json>> }): DeployFile[];
  /** Further config rules of this target; null when fine, else why not. */
  checkConfig?(config: Readonly<Record<string, Json>>): string | null;
}

export interface FileTargetConfig {
  paths: Record<string, string | undefined>;
  validate: DeployCommand | null;
  reload: DeployCommand | null;
}

function readCommand(config: Readonly<Record<string, Json>>, c: CommandField | undefined): DeployCommand | null {
  if (!c) return null;
  const raw = config[c.field];
  // Absent: the default. null (where the schema allows it): the operator turned the step off.
  if (raw === null) return null;
  if (raw === undefined) return c.default ? { argv: checkArgv(c.default, c.field) } : null;
  return { argv: checkArgv(raw, c.field) };
}

/** The checked config of a file target; throws DeployConfigError naming the first problem. */
export function readFileTargetConfig(spec: FileTargetSpec, config: Readonly<Record<string, Json>>): FileTargetConfig {
  const paths: Record<string, string | undefined> = {};
  for (const [field, required] of Object.entries(spec.pathFields)) {
    const v = config[field];
    if (v === undefined || v === null || v === '') {
      if (required) throw new DeployConfigError(`${field} is required`);
      continue;
    }
    const path = checkPath(v, field);
    const twin = Object.entries(paths).find(([, p]) => p === path);
    if (twin) throw new DeployConfigError(`${field} and ${twin[0]} name the same file`);
    paths[field] = path;
  }
  const verify = config.verify === undefined || config.verify === null ? null : verifyEndpointProblem(config.verify);
  if (verify) throw new DeployConfigError(verify);
  const extra = spec.checkConfig?.(config);
  if (extra) throw new DeployConfigError(extra);
  return { paths, validate: readCommand(config, spec.validateCommand), reload: readCommand(config, spec.reloadCommand) };
}

const reasonOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function defineFileTarget(spec: FileTargetSpec): TargetPlugin {
  const configOf = (ctx: PluginContext): FileTargetConfig | { problem: string } => {
    try {
      return readFileTargetConfig(spec, ctx.config);
    } catch (err) {
      return { problem: `invalid target config: ${reasonOf(err)}` };
    }
  };

  return definePlugin({
    kind: 'target',
    async deploy(request, ctx): Promise<DeployResult> {
      const cfg = configOf(ctx);
      if ('problem' in cfg) return { status: 'failed', reason: cfg.problem, rolledBack: false };
      let keyPem: string | null = null;
      if (spec.needsKey) {
        try {
          keyPem = await ctx.fs.read(request.keyPath);
        } catch (err) {
          return { status: 'failed', reason: `cannot read the private key at ${request.keyPath}: ${reasonOf(err)}`, rolledBack: false };
        }
        const mismatch = await keyPairProblem(request.certificatePem, keyPem);
        if (mismatch) return { status: 'failed', reason: `${mismatch}; nothing was written`, rolledBack: false };
      }
      let files: DeployFile[];
      try {
        // A configured key file that is the agent's own key file needs no copy.
        files = spec.files({ request, keyPem, paths: cfg.paths, config: ctx.config }).filter((f) => f.path !== request.keyPath);
      } catch (err) {
        return { status: 'failed', reason: reasonOf(err), rolledBack: false };
      }
      return deployFiles(ctx, { files, validate: cfg.validate, reload: cfg.reload });
    },

    async rollback(request, ctx) {
      const cfg = configOf(ctx);
      if ('problem' in cfg) return { ok: false, reason: cfg.problem };
      return restoreSnapshot(ctx, String(request?.snapshotId), { validate: cfg.validate, reload: cfg.reload });
    },

    /** Runs the validate command against the files as they are now. */
    async validate(_request, ctx) {
      const cfg = configOf(ctx);
      if ('problem' in cfg) return { ok: false, reason: cfg.problem };
      if (!cfg.validate) return { ok: true };
      const [command, ...args] = cfg.validate.argv;
      try {
        const r = await ctx.exec.run(command, args, { timeoutMs: 30_000 });
        return r.exitCode === 0 ? { ok: true } : { ok: false, reason: `${command} exited with ${r.exitCode}: ${(r.stderr.trim() || r.stdout.trim()).slice(-400)}` };
      } catch (err) {
        return { ok: false, reason: `${command} could not run: ${reasonOf(err)}` };
      }
    },

    async validateConfig(_request, ctx) {
      const cfg = configOf(ctx);
      return 'problem' in cfg ? { ok: false, reason: cfg.problem } : { ok: true };
    },
  } satisfies TargetPlugin);
}
