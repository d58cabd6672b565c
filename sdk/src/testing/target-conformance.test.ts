import { describe, expect, it } from 'vitest';
import { definePlugin, type DeployRequest, type DeployResult, type PluginContext, type TargetPlugin } from '../index.js';
import { argvProblem, deployFiles, leafChainBundle, pathProblem, restoreSnapshot } from '../deploy/index.js';
import { ConformanceError, runConformance, type ConformanceReport } from './index.js';

interface Cfg { cert_path: string; key_path: string; validate_command: string[]; reload_command: string[] }

const config = { cert_path: '/etc/web/tls/site.crt', key_path: '/etc/web/tls/site.key', validate_command: ['/usr/sbin/web', '-t'], reload_command: ['/usr/sbin/web', '-s', 'reload'] };
// The manifest declares the command its config runs, as the agent requires.
const grants = { kv: true, fs: { paths: [] }, exec: { commands: ['/usr/sbin/web'] } };

const configProblem = (c: Cfg) => pathProblem(c.cert_path, 'cert_path') ?? pathProblem(c.key_path, 'key_path') ?? argvProblem(c.validate_command, 'validate_command') ?? argvProblem(c.reload_command, 'reload_command');

/** A target built on the shared pipeline; the variants below each break one rule. */
function target(overrides: { deploy?: (req: DeployRequest, ctx: PluginContext, c: Cfg) => Promise<DeployResult>; check?: boolean } = {}) {
  return definePlugin({
    kind: 'target',
    async deploy(request, ctx) {
      const c = ctx.config as unknown as Cfg;
      const problem = overrides.check === false ? null : configProblem(c);
      if (problem) return { status: 'failed', reason: problem, rolledBack: false };
      if (overrides.deploy) return overrides.deploy(request, ctx, c);
      const key = await ctx.fs.read(request.keyPath);
      return deployFiles(ctx, {
        files: [{ path: c.cert_path, content: leafChainBundle(request.certificatePem, request.chainPem) }, { path: c.key_path, content: key }],
        validate: { argv: c.validate_command }, reload: { argv: c.reload_command },
      });
    },
    async rollback(request, ctx) {
      const c = ctx.config as unknown as Cfg;
      return restoreSnapshot(ctx, request.snapshotId, { reload: { argv: c.reload_command } });
    },
  } satisfies TargetPlugin);
}

const failedChecks = async (plugin: TargetPlugin): Promise<string[]> => {
  const err = await runConformance('target', { plugin, config, grants, unsupported: ['validate', 'verify'] }).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ConformanceError);
  return (err as ConformanceError).report.checks.filter((c) => !c.ok).map((c) => c.name);
};

describe('target conformance', () => {
  it('passes a target built on the deploy pipeline, with every behaviour checked', async () => {
    const report: ConformanceReport = await runConformance('target', { plugin: target(), config, grants, unsupported: ['validate', 'verify'] });
    expect(report.failed).toBe(0);
    expect(report.checks.map((c) => c.name)).toEqual(expect.arrayContaining([
      'deploy: a first certificate is deployed and changes something',
      'deploy: writes the certificate into the configured files',
      "deploy: leaves the agent's key files unchanged",
      'deploy: the same certificate again answers changed:false',
      'deploy: the same certificate again runs no command (no reload)',
      'deploy: a new certificate replaces the files',
      'rollback: restores the previous files',
      'deploy: a failing validate command rolls back',
      'refuses config: cert_path with ".."',
      'refuses config: key_path relative',
      'refuses config: reload_command with a shell command string',
      'refuses config: validate_command as one string',
      'refuses config: reload_command with a relative command',
      'refuses config: reload_command running /bin/sh -c id',
      'refuses config: validate_command running /bin/sh -c id',
      'refuses config: cert_path naming /root/.ssh/authorized_keys',
      'refuses config: key_path naming /root/.ssh/authorized_keys',
    ]));
  });

  it('fails a target that always rewrites and reloads', async () => {
    const always = target({
      deploy: async (req, ctx, c) => {
        await ctx.fs.write(c.cert_path, req.certificatePem);
        await ctx.exec.run(c.reload_command[0], c.reload_command.slice(1));
        return { status: 'deployed', changed: true };
      },
    });
    expect(await failedChecks(always)).toEqual(expect.arrayContaining(['deploy: the same certificate again answers changed:false', 'deploy: the same certificate again runs no command (no reload)', 'rollback: a changed deploy answers a snapshotId']));
  });

  it('fails a target that ignores a failing validate command', async () => {
    const careless = target({
      deploy: async (req, ctx, c) => {
        await ctx.fs.write(c.cert_path, req.certificatePem);
        await ctx.exec.run(c.validate_command[0], c.validate_command.slice(1));
        return { status: 'deployed', changed: true };
      },
    });
    expect(await failedChecks(careless)).toContain('deploy: a failing validate command rolls back');
  });

  it('fails a target that does not check its commands, and one that overwrites the agent key', async () => {
    const unchecked = target({
      check: false,
      deploy: async (req, ctx, c) => {
        await ctx.fs.write(c.cert_path, req.certificatePem);
        await ctx.exec.run(c.reload_command[0], c.reload_command.slice(1));
        return { status: 'deployed', changed: true };
      },
    });
    expect(await failedChecks(unchecked)).toEqual(expect.arrayContaining(['refuses config: reload_command with a shell command string', 'refuses config: reload_command as one string']));
    const keyWriter = target({
      deploy: async (req, ctx, c) => {
        await ctx.fs.write(req.keyPath, 'overwritten');
        return deployFiles(ctx, { files: [{ path: c.cert_path, content: req.certificatePem }] });
      },
    });
    expect(await failedChecks(keyWriter)).toContain("deploy: leaves the agent's key files unchanged");
  });

  it('holds a target that cannot deploy in memory to shape and refusals only when it says where the real test is', async () => {
    const keystore = target({ deploy: async () => ({ status: 'failed', reason: 'keytool is not in the test host', rolledBack: false }) });
    expect(await failedChecks(keystore)).toEqual(['deploy: a first certificate is deployed and changes something']);
    const report = await runConformance('target', { plugin: keystore, config, grants, unsupported: ['validate', 'verify'], target: { realServerOnly: 'test/targets/keystore.test.ts' } });
    expect(report.checks.find((c) => c.name === 'deploy: answers with a contract result')?.detail).toMatch(/keystore\.test\.ts/);
    expect(report.checks.filter((c) => c.name.startsWith('refuses config:'))).toHaveLength(14);
  });
});
