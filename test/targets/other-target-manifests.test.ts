import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ABSOLUTE_FILE_PATH_PATTERN, verifyEndpointSchema } from '@certctl/sdk/deploy';
import { createConfigAjv, secretFieldPaths } from '../../kernel/src/plugins/config-schema.js';
import { checkManifest } from '../../kernel/src/plugins/manifest-check.js';
import { VERSION } from '../../kernel/src/version.js';

/**
 * The Traefik, Caddy, Envoy, Postfix, Dovecot, Java keystore and SSH manifests:
 * valid for the kernel, sharing the verify block, marking every agent-side path,
 * command and URL for config-derived grants, keeping secrets write-only, and the
 * kernel's config validation (the first gate) refusing escapes and shell strings.
 */
const PLUGINS: Record<string, { good: Record<string, unknown>; paths: string[]; commands: string[]; urls?: string[]; secrets: string[] }> = {
  traefik: { good: { cert_dir: '/etc/traefik/certs' }, paths: ['cert_dir'], commands: ['validate_command', 'reload_command'], secrets: [] },
  envoy: { good: { cert_dir: '/etc/envoy/certs' }, paths: ['cert_dir'], commands: ['validate_command', 'reload_command'], secrets: [] },
  postfix: { good: { cert_path: '/etc/postfix/tls/mail.crt', key_path: '/etc/postfix/tls/mail.key' }, paths: ['cert_path', 'key_path', 'chain_path'], commands: ['validate_command', 'reload_command'], secrets: [] },
  dovecot: { good: { cert_path: '/etc/dovecot/private/mail.crt', key_path: '/etc/dovecot/private/mail.key' }, paths: ['cert_path', 'key_path', 'chain_path'], commands: ['validate_command', 'reload_command'], secrets: [] },
  caddy: { good: { mode: 'file', cert_path: '/etc/caddy/site.crt', key_path: '/etc/caddy/site.key' }, paths: ['cert_path', 'key_path'], commands: ['reload_command'], urls: ['admin_url'], secrets: [] },
  jks: { good: { keystore_path: '/opt/app/keystore.jks', keystore_password: 'changeit', work_dir: '/var/lib/certctl/jks' }, paths: ['keystore_path', 'work_dir'], commands: ['keytool_command', 'openssl_command', 'reload_command'], secrets: ['keystore_password'] },
  ssh: {
    good: { host: 'web1.internal', user: 'deploy', host_key_fingerprint: `SHA256:${'a'.repeat(43)}`, cert_path: '/etc/nginx/tls/site.crt', key_path: '/etc/nginx/tls/site.key' },
    paths: ['private_key_path'], commands: [], secrets: ['password', 'private_key', 'private_key_passphrase'],
  },
};

const manifestOf = (name: string) => JSON.parse(fs.readFileSync(new URL(`../../plugins/targets/${name}/package.json`, import.meta.url), 'utf8')).certctl;

describe.each(Object.entries(PLUGINS))('%s target manifest', (name, expected) => {
  const manifest = manifestOf(name);
  const props = manifest.configSchema.properties;
  const validate = createConfigAjv().compile(manifest.configSchema);

  it('is a valid worker target manifest with the shared verify block', () => {
    expect(checkManifest(manifest, VERSION)).toMatchObject({ ok: true });
    expect(manifest).toMatchObject({ id: name, kind: 'target', runtimes: ['worker'], capabilities: { kv: true } });
    expect(props.verify).toEqual(verifyEndpointSchema);
  });

  it('marks agent-side paths, commands and URLs, and keeps secrets write-only', () => {
    for (const p of expected.paths) expect(props[p]['x-certctl-path'], p).toBe(true);
    for (const p of expected.paths) expect(props[p].pattern, p).toBe(ABSOLUTE_FILE_PATH_PATTERN);
    // A command field is fixed argv (true), or, for a tool the plugin drives (keytool, openssl), the argv then one of its argument lists.
    for (const c of expected.commands) expect(props[c], c).toMatchObject({ type: 'array', 'x-certctl-command': name === 'jks' && c !== 'reload_command' ? { args: expect.any(Array) } : true });
    for (const u of expected.urls ?? []) expect(props[u]['x-certctl-url'], u).toBe(true);
    expect(secretFieldPaths(manifest.configSchema).sort()).toEqual([...expected.secrets].sort());
    // Nothing else may widen grants: only the listed fields carry the markers.
    const marked = (key: string) => Object.keys(props).filter((k) => props[k][key] !== undefined && props[k][key] !== false).sort();
    expect(marked('x-certctl-path')).toEqual([...expected.paths].sort());
    expect(marked('x-certctl-command')).toEqual([...expected.commands].sort());
  });

  it('gives every command it declares its argument lists', () => {
    const exec = manifest.capabilities.exec ?? { commands: [] };
    expect(Object.keys(exec.args ?? {}).sort()).toEqual([...exec.commands].sort());
  });

  it('accepts a minimal config', () => {
    const config = structuredClone(expected.good);
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
  });

  const pathField = expected.paths[0];
  it.each([
    ['a ".." path', { [pathField]: '/etc/../etc/shadow' }],
    ['a relative path', { [pathField]: 'etc/shadow' }],
    ['a path with a line break', { [pathField]: '/etc/a\nb' }],
    ...(expected.commands.length ? [['a shell string as command', { [expected.commands[0]]: '/usr/sbin/postfix reload; rm -rf /' }] as const] : []),
    ['an unknown field', { post_hook: '/bin/sh' }],
  ])('the kernel refuses %s', (_what, over) => {
    expect(validate({ ...structuredClone(expected.good), ...over })).toBe(false);
  });
});
