import crypto from 'node:crypto';
import { definePlugin, type DeployResult, type PluginContext } from '@certctl/sdk';
import { defineFileTarget, DeployConfigError, leafChainBundle, pemBlocks } from '@certctl/sdk/deploy';
import { apiDeploy, apiLoadedFingerprint, apiRollback } from './api-deploy.js';
import { readConfig, type CaddyConfig } from './config.js';

/**
 * Caddy in one of two modes. `file`: the certificate (leaf + chain) and key go
 * where the Caddyfile's tls directive points, then an optional reload command
 * runs (Caddy does not watch certificate files). `api`: the PEMs are loaded into
 * the running server through its admin API, with no files and no restart.
 */

function tryConfig(ctx: PluginContext): CaddyConfig | { problem: string } {
  try {
    return readConfig(ctx.config, ctx.instanceId);
  } catch (err) {
    if (err instanceof DeployConfigError) return { problem: `invalid config: ${err.message}` };
    throw err;
  }
}

const fingerprint = (pem: string) => new crypto.X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();

/** file mode: the shared file pipeline (key/certificate pair check, snapshot, reload, rollback). */
const fileTarget = defineFileTarget({
  pathFields: { cert_path: true, key_path: true },
  reloadCommand: { field: 'reload_command', default: null },
  needsKey: true,
  files: ({ request, keyPem, paths }) => [
    { path: paths.cert_path!, content: leafChainBundle(request.certificatePem, request.chainPem), mode: 0o644 },
    { path: paths.key_path!, content: keyPem!, mode: 0o600 },
  ],
});

export default definePlugin({
  kind: 'target',

  async deploy(request, ctx): Promise<DeployResult> {
    const cfg = tryConfig(ctx);
    if ('problem' in cfg) return { status: 'failed', reason: cfg.problem, rolledBack: false };
    return cfg.mode === 'api' ? apiDeploy(ctx, request, cfg.adminUrl, cfg.objectId) : fileTarget.deploy(request, ctx);
  },

  async rollback(request, ctx) {
    const cfg = tryConfig(ctx);
    if ('problem' in cfg) return { ok: false, reason: cfg.problem };
    return cfg.mode === 'api' ? apiRollback(ctx, cfg.adminUrl, request.snapshotId) : fileTarget.rollback!(request, ctx);
  },

  /** What Caddy has: the entry under our @id (api mode) or the certificate file (file mode), by SHA-256 fingerprint. */
  async verify(request, ctx) {
    const cfg = tryConfig(ctx);
    if ('problem' in cfg) return { status: 'failed', reason: cfg.problem };
    let observed: string | null;
    try {
      if (cfg.mode === 'api') observed = await apiLoadedFingerprint(ctx, cfg.adminUrl, cfg.objectId);
      else {
        const first = pemBlocks(await ctx.fs.read(cfg.certPath)).find((b) => b.label === 'CERTIFICATE');
        observed = first ? fingerprint(first.text) : null;
      }
    } catch (err) {
      return { status: 'failed', reason: (err as Error).message };
    }
    const expected = request.fingerprintSha256.replace(/:/g, '').toLowerCase();
    if (observed === null) return { status: 'failed', reason: 'Caddy holds no certificate from certctl' };
    return observed === expected ? { status: 'success', observedFingerprintSha256: observed } : { status: 'failed', observedFingerprintSha256: observed, reason: 'Caddy holds a different certificate' };
  },

  /** file mode: the config and reload command are usable; api mode: the admin API answers. */
  async validate(_request, ctx) {
    const cfg = tryConfig(ctx);
    if ('problem' in cfg) return { ok: false, reason: cfg.problem };
    if (cfg.mode === 'file') return fileTarget.validate!({}, ctx);
    try {
      await apiLoadedFingerprint(ctx, cfg.adminUrl, cfg.objectId);
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  },

  /** The config alone, without reaching anything. */
  async validateConfig(_request, ctx) {
    const cfg = tryConfig(ctx);
    return 'problem' in cfg ? { ok: false, reason: cfg.problem } : { ok: true };
  },
});
