import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyEndpointSchema } from '@certctl/sdk/deploy';
import { createAgentHarness, snapshotDir, type AgentHarness } from './agent-harness.js';

/**
 * Postfix and Dovecot take the same file layout and differ in their commands.
 * Neither server is installed here, so the validate step is a real check of the
 * new certificate file (openssl x509) and the reload appends to a log; the
 * defaults are shown to be the servers' own commands.
 */
export function describeMailTarget(type: 'postfix' | 'dovecot', defaults: { validate: string[]; reload: string[] }): void {
  describe(`${type} target`, () => {
    let h: AgentHarness;
    beforeAll(() => { h = createAgentHarness(type); });
    afterAll(() => h?.cleanup());

    const setup = (name: string) => {
      const dir = h.mkdir(name);
      const log = path.join(h.dir, `${name}-reload.log`);
      const config = {
        cert_path: path.join(dir, 'mail.crt'), key_path: path.join(dir, 'mail.key'),
        validate_command: ['/usr/bin/openssl', 'x509', '-noout', '-in', path.join(dir, 'mail.crt')],
        reload_command: ['/bin/sh', '-c', 'echo reload >> "$0"', log],
      };
      const reloads = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0);
      return { dir, config, reloads };
    };

    it('writes leaf+chain and key, validates, reloads once; same certificate again changes nothing', async () => {
      const { dir, config, reloads } = setup('full');
      const cert = h.pki.issue(`${type}.certctl.test`);
      expect(await h.deploy(type, config, cert)).toEqual({ status: 'deployed', changed: true, snapshotId: expect.any(String) });
      expect(fs.readFileSync(path.join(dir, 'mail.crt'), 'utf8')).toBe(`${cert.certificatePem.trim()}\n${cert.chainPem[0].trim()}\n`);
      expect(fs.readFileSync(path.join(dir, 'mail.key'), 'utf8').trim()).toBe(cert.keyPem.trim());
      expect(fs.statSync(path.join(dir, 'mail.key')).mode & 0o777).toBe(0o600);
      expect(reloads()).toBe(1);
      expect(await h.deploy(type, config, cert)).toEqual({ status: 'deployed', changed: false });
      expect(reloads()).toBe(1);
    });

    it('writes a separate chain file when chain_path is set', async () => {
      const { dir, config } = setup('chain');
      const cert = h.pki.issue(`${type}.certctl.test`);
      expect(await h.deploy(type, { ...config, chain_path: path.join(dir, 'chain.pem') }, cert)).toMatchObject({ status: 'deployed' });
      expect(fs.readFileSync(path.join(dir, 'mail.crt'), 'utf8')).toBe(`${cert.certificatePem.trim()}\n`);
      expect(fs.readFileSync(path.join(dir, 'chain.pem'), 'utf8')).toBe(`${cert.chainPem[0].trim()}\n`);
    });

    it('a failing validate restores the previous files without reloading; rollback restores and reloads', async () => {
      const { dir, config, reloads } = setup('failing');
      const first = await h.deploy(type, config, h.pki.issue(`${type}.certctl.test`));
      expect(first.status).toBe('deployed');
      const before = snapshotDir(dir);
      const bad = await h.deploy(type, { ...config, validate_command: ['/usr/bin/openssl', 'x509', '-noout', '-in', path.join(dir, 'missing.crt')] }, h.pki.issue(`${type}.certctl.test`));
      expect(bad).toMatchObject({ status: 'failed', rolledBack: true, reason: expect.stringContaining('validate command /usr/bin/openssl exited with 1') });
      expect(snapshotDir(dir)).toEqual(before);
      expect(reloads()).toBe(1);

      const next = (await h.deploy(type, config, h.pki.issue(`${type}.certctl.test`))) as { snapshotId: string };
      expect(reloads()).toBe(2);
      expect(await h.call(type, config, 'rollback', { snapshotId: next.snapshotId })).toEqual({ ok: true });
      expect(snapshotDir(dir)).toEqual(before);
      expect(reloads()).toBe(3);
    });

    it(`defaults to ${defaults.validate.join(' ')} and ${defaults.reload.join(' ')}`, async () => {
      const manifest = JSON.parse(fs.readFileSync(new URL(`../../../plugins/targets/${type}/package.json`, import.meta.url), 'utf8')).certctl;
      const props = manifest.configSchema.properties;
      expect(props.validate_command).toMatchObject({ 'x-certctl-command': true, default: defaults.validate });
      expect(props.reload_command).toMatchObject({ 'x-certctl-command': true, default: defaults.reload });
      expect(props.verify).toEqual(verifyEndpointSchema);
      // Without commands in the config the agent fills the defaults and runs them; neither server is installed here.
      const { dir } = setup('defaults');
      const r = await h.deploy(type, { cert_path: path.join(dir, 'mail.crt'), key_path: path.join(dir, 'mail.key') }, h.pki.issue(`${type}.certctl.test`));
      expect(r).toMatchObject({ status: 'failed', rolledBack: true, reason: expect.stringContaining(`validate command ${defaults.validate[0]}`) });
      expect(snapshotDir(dir)).toEqual({});
    });

    it.each([
      ['a ".." key path', { key_path: '/etc/ssl/../../etc/shadow' }],
      ['a relative cert path', { cert_path: 'mail.crt' }],
      ['a shell string as reload command', { reload_command: `${defaults.reload.join(' ')}; rm -rf /` }],
      ['$(...) in the command path', { validate_command: ['/usr/sbin/$(id)'] }],
      ['backticks in the command path', { reload_command: ['/usr/bin/`id`'] }],
      ['a relative command', { reload_command: ['postfix', 'reload'] }],
    ])('refuses %s before writing anything', async (_what, over) => {
      const { dir, config, reloads } = setup(`bad-${Math.random().toString(36).slice(2, 8)}`);
      const outcome = await h.outcome(type, { ...config, ...over }, h.pki.issue(`${type}.certctl.test`));
      expect(outcome).toMatch(/^(failed|refused): /);
      expect(snapshotDir(dir)).toEqual({});
      expect(reloads()).toBe(0);
    });
  });
}
