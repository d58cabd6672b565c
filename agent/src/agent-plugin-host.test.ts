import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentPluginHost, splitSecrets, TargetUnavailable } from './agent-plugin-host.js';
import { LocalKv } from './local-kv.js';

const fixtures = (dir: string) => fileURLToPath(new URL(`../../test/fixtures/${dir}/`, import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-host-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('agent plugin host', () => {
  const host = new AgentPluginHost({
    pluginDirs: [fixtures('agent-plugins'), fixtures('plugins-runtime')], workspacePluginsDir: null, log: pino({ level: 'silent' }),
    kv: new LocalKv(path.join(tmp, 'kv')), policy: { allowedPaths: ['/srv'], allowedCommands: ['/usr/sbin/nginx'], protectedDirs: [] },
  });

  it('takes secret fields out of the config the plugin sees', () => {
    const config = { url: 'https://x', auth: { user: 'u', password: 'p' }, api_token: 't0k', list: [1] };
    const out = splitSecrets(config, ['api_token', 'auth.password', 'missing.path']);
    expect(out).toEqual({ config: { url: 'https://x', auth: { user: 'u' }, list: [1] }, secrets: { api_token: 't0k', 'auth.password': 'p' } });
    expect(config.auth.password).toBe('p'); // the caller's object is left alone
  });

  it('runs only enabled first-party target plugins, with configs their schema accepts', () => {
    expect(host.targetTypes()).toEqual(['agent-file-target']);
    expect(() => host.open({ id: 't', type: 'runtime-issuer', config: {} })).toThrow(TargetUnavailable);
    expect(() => host.open({ id: 't', type: 'runtime-issuer', config: {} })).toThrow(/issuer plugin, not a target plugin/);
    expect(() => host.open({ id: 't', type: 'agent-file-target', config: { cert_path: 'relative' } })).toThrow(/does not fit plugin agent-file-target's schema/);
  });

  it('derives each session\'s grants from its own config and key file', async () => {
    const session = host.open({ id: 't', type: 'agent-file-target', config: { cert_path: '/srv/a.crt', key_path: '/srv/a.key', reload_command: ['/usr/sbin/nginx', '-s', 'reload'] } }, { keyPath: '/var/lib/certctl/keys/mc-a/k.key' });
    expect(session.grants).toMatchObject({ fsWrite: ['/srv/a.crt', '/srv/a.key'], fsRead: ['/var/lib/certctl/keys/mc-a/k.key'], exec: [{ command: '/usr/sbin/nginx', args: [['-s', 'reload']] }], kv: true });
    await session.close();
  });
});
