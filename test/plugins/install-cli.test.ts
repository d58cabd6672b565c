import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../kernel/src/cli.js';
import { installPluginCommand, type CommandIo } from '../../kernel/src/plugins/install/cli-install.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { FIXTURE_ENTRY, fixturePackageJson, fixturePlugin } from './install-fixtures.js';

describe.skipIf(POSTGRES_UNAVAILABLE)('certctl plugins install', () => {
  let t: TestKernel;
  let tmp: string;
  let caFile: string;
  const lines: string[] = [];
  const io = (env: Record<string, string | undefined> = {}, npm?: string): CommandIo => ({ out: (l) => lines.push(l), env, npm });
  const asAdmin = () => ({ server: t.kernel.url, apiKey: t.adminKey, caFile });

  beforeAll(async () => {
    t = await startTestKernel();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-cli-'));
    caFile = path.join(t.dataDir, 'tls', 'server.crt');
  });
  afterAll(async () => {
    await t?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('uploads a .tgz and grants the capabilities named in --grant', async () => {
    const file = path.join(tmp, 'widgets-1.0.0.tgz');
    fs.writeFileSync(file, fixturePlugin({ id: 'cli-tgz-ca' }));
    const res = await installPluginCommand(file, { ...asAdmin(), grant: 'http' }, io());
    expect(res).toEqual({ id: 'cli-tgz-ca', status: 'enabled' });
    expect(t.kernel.plugins.get('cli-tgz-ca')).toMatchObject({ status: 'enabled', grants: { http: { hosts: ['ca.widgets.example', 'ocsp.widgets.example'] } } });
    expect(lines.join('\n')).toMatch(/it asks for: http:ca\.widgets\.example, http:ocsp\.widgets\.example, kv/);
    expect(lines.join('\n')).toMatch(/granted: http:ca\.widgets\.example, http:ocsp\.widgets\.example; status enabled/);
  });

  it('packs a plugin folder with npm pack and grants everything with --grant all', async () => {
    const dir = path.join(tmp, 'folder-plugin');
    fs.mkdirSync(path.join(dir, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ ...fixturePackageJson({ id: 'cli-folder-ca', name: 'certctl-plugin-folder' }), files: ['dist'], scripts: { prepack: 'touch SCRIPT-RAN' } }));
    fs.writeFileSync(path.join(dir, 'dist', 'plugin.js'), FIXTURE_ENTRY);
    const res = await installPluginCommand(dir, { ...asAdmin(), grant: 'all' }, io());
    expect(res).toEqual({ id: 'cli-folder-ca', status: 'enabled' });
    expect(t.kernel.plugins.get('cli-folder-ca')!.grants).toEqual({ http: { hosts: ['ca.widgets.example', 'ocsp.widgets.example'] }, kv: true });
    // Packing runs none of the package's scripts.
    expect(fs.existsSync(path.join(dir, 'SCRIPT-RAN'))).toBe(false);
  });

  it('hands an npm name to npm pack as one argument, and reads server, key and CA from the environment', async () => {
    // A stand-in npm that records its argv and "downloads" a fixture package; the real registry is not reachable here.
    const fakeNpm = path.join(tmp, 'fake-npm.mjs');
    const tgz = path.join(tmp, 'registry-copy.tgz');
    fs.writeFileSync(tgz, fixturePlugin({ id: 'cli-registry-ca', name: '@acme/certctl-widgets', version: '2.1.0' }));
    fs.writeFileSync(fakeNpm, `#!/usr/bin/env node
import fs from 'node:fs';
const args = process.argv.slice(2);
fs.writeFileSync(${JSON.stringify(path.join(tmp, 'npm-args.json'))}, JSON.stringify(args));
const dest = args[args.indexOf('--pack-destination') + 1];
fs.copyFileSync(${JSON.stringify(tgz)}, dest + '/acme-certctl-widgets-2.1.0.tgz');
process.stdout.write('npm notice noise\\n' + JSON.stringify([{ id: '@acme/certctl-widgets@2.1.0', filename: 'acme-certctl-widgets-2.1.0.tgz' }]));
`, { mode: 0o755 });
    const env = { CERTCTL_SERVER_URL: t.kernel.url, CERTCTL_API_KEY: t.adminKey, CERTCTL_CA_FILE: caFile };
    const res = await installPluginCommand('@acme/certctl-widgets@^2.1', {}, io(env, fakeNpm));
    expect(res).toEqual({ id: 'cli-registry-ca', status: 'pending_grant' });
    const args = JSON.parse(fs.readFileSync(path.join(tmp, 'npm-args.json'), 'utf8')) as string[];
    expect(args[0]).toBe('pack');
    expect(args[1]).toBe('@acme/certctl-widgets@^2.1');
    expect(args).toContain('--ignore-scripts');
    expect(lines.join('\n')).toMatch(/nothing granted yet/);
  });

  it('fails clearly: no server, an option-looking name, an untrusted server, a grant the plugin did not ask for', async () => {
    await expect(installPluginCommand('x.tgz', {}, io())).rejects.toThrow(/no server: pass --server/);
    await expect(installPluginCommand('--registry=http://evil', asAdmin(), io())).rejects.toThrow(/neither a \.tgz file, a folder, nor an npm package name/);
    await expect(installPluginCommand('a b; rm -rf /', asAdmin(), io())).rejects.toThrow(/neither/);
    const file = path.join(tmp, 'untrusted.tgz');
    fs.writeFileSync(file, fixturePlugin({ id: 'cli-untrusted-ca' }));
    await expect(installPluginCommand(file, { server: t.kernel.url, apiKey: t.adminKey }, io())).rejects.toThrow(/cannot reach .*certificate/i);
    await expect(installPluginCommand(file, { ...asAdmin(), apiKey: 'wrong' }, io())).rejects.toThrow(/install failed \(401\)/);
    await expect(installPluginCommand(file, { ...asAdmin(), grant: 'exec' }, io())).rejects.toThrow(/installed cli-untrusted-ca, but granted nothing: the plugin does not ask for "exec"/);
    expect(t.kernel.plugins.get('cli-untrusted-ca')!.installation!.grantPending).toBe(true);
  });

  it('is wired into the certctl command line', async () => {
    const file = path.join(tmp, 'main.tgz');
    fs.writeFileSync(file, fixturePlugin({ id: 'cli-main-ca' }));
    const written: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { written.push(String(chunk)); return true; });
    try {
      await main(['node', 'certctl', 'plugins', 'install', file, '--server', t.kernel.url, '--api-key', t.adminKey, '--ca-file', caFile, '--grant', 'kv']);
    } finally {
      spy.mockRestore();
    }
    expect(process.exitCode ?? 0).toBe(0);
    expect(written.join('')).toMatch(/installed cli-main-ca 1\.0\.0 \(issuer plugin\)/);
    expect(t.kernel.plugins.get('cli-main-ca')).toMatchObject({ status: 'enabled', grants: { kv: true } });
  });
});
