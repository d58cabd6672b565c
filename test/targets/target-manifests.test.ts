import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ABSOLUTE_FILE_PATH_PATTERN, commandFieldSchema, pathFieldSchema, readFileTargetConfig, verifyEndpointSchema, type FileTargetSpec } from '@certctl/sdk/deploy';
import { argsAllowed } from '@certctl/sdk/policy';
import { createConfigAjv } from '../../kernel/src/plugins/config-schema.js';
import { checkManifest } from '../../kernel/src/plugins/manifest-check.js';
import { VERSION } from '../../kernel/src/version.js';

/**
 * The NGINX, Apache and HAProxy manifests: valid for the kernel, their shared
 * pieces equal to @certctl/sdk/deploy's, and the kernel's config validation (the
 * first gate, before any agent sees a config) refusing path escapes and shell strings.
 */
const PLUGINS = {
  nginx: { paths: ['cert_path', 'key_path', 'chain_path'], defaults: { validate_command: ['/usr/sbin/nginx', '-t'], reload_command: ['/usr/sbin/nginx', '-s', 'reload'] } },
  apache: { paths: ['cert_path', 'key_path', 'chain_path'], defaults: { validate_command: ['/usr/sbin/apachectl', 'configtest'], reload_command: ['/usr/sbin/apachectl', 'graceful'] } },
  haproxy: { paths: ['pem_path'], defaults: { validate_command: ['/usr/sbin/haproxy', '-c', '-f', '/etc/haproxy/haproxy.cfg'], reload_command: ['/usr/bin/systemctl', 'reload', 'haproxy'] } },
} as const;

const manifestOf = (name: string) => JSON.parse(fs.readFileSync(new URL(`../../plugins/targets/${name}/package.json`, import.meta.url), 'utf8')).certctl;

describe.each(Object.entries(PLUGINS))('%s target manifest', (name, expected) => {
  const manifest = manifestOf(name);
  const props = manifest.configSchema.properties;
  const validate = createConfigAjv().compile(manifest.configSchema);
  const good = Object.fromEntries(expected.paths.map((p) => [p, `/etc/${name}/tls/${p.replace('_path', '')}.pem`]));

  it('is a valid worker target manifest asking for kv, config-derived fs, and the commands its defaults run', () => {
    expect(checkManifest(manifest, VERSION)).toMatchObject({ ok: true });
    expect(manifest).toMatchObject({ id: name, kind: 'target', runtimes: ['worker'], capabilities: { kv: true, fs: { paths: [] } } });
    // The agent runs a config's command only if the manifest declares it (or the operator allows it).
    for (const argv of Object.values(expected.defaults)) expect(manifest.capabilities.exec.commands).toContain(argv[0]);
  });

  it('lists the argument lists of every command it declares, and its defaults fit them', () => {
    const { commands, args } = manifest.capabilities.exec;
    expect(Object.keys(args).sort()).toEqual([...commands].sort());
    for (const [command, ...rest] of Object.values(expected.defaults) as string[][]) expect(argsAllowed(args[command], rest), `${command} ${rest.join(' ')}`).toBe(true);
    // A declared command runs with nothing else: `systemctl stop sshd` is not a reload.
    for (const command of commands) expect(argsAllowed(args[command], ['stop', 'sshd']), command).toBe(false);
  });

  it('shares the verify block and path pattern with @certctl/sdk/deploy', () => {
    expect(props.verify).toEqual(verifyEndpointSchema);
    for (const p of expected.paths) expect(props[p]).toMatchObject({ 'x-certctl-path': true, pattern: ABSOLUTE_FILE_PATH_PATTERN });
    for (const [field, argv] of Object.entries(expected.defaults)) {
      const optional = name === 'haproxy' && field === 'validate_command';
      expect(props[field]).toEqual(commandFieldSchema(props[field].description, argv, { nullable: optional }));
    }
    for (const p of expected.paths) expect(props[p]).toEqual(pathFieldSchema(props[p].description));
  });

  it('fills the default commands and accepts a full config', () => {
    const config: Record<string, unknown> = { ...good, verify: { host: '127.0.0.1', port: 8443 } };
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    expect(config).toMatchObject({ ...expected.defaults, verify: { timeout_ms: 5000 } });
  });

  it.each([
    ['a relative path', (c: Record<string, unknown>) => ({ ...c, [expected.paths[0]]: 'etc/tls/site.pem' })],
    ['a ".." path', (c: Record<string, unknown>) => ({ ...c, [expected.paths[0]]: `/etc/${name}/../shadow` })],
    ['a path with a line break', (c: Record<string, unknown>) => ({ ...c, [expected.paths[0]]: '/etc/tls/a\nb' })],
    ['a directory path', (c: Record<string, unknown>) => ({ ...c, [expected.paths[0]]: '/etc/tls/' })],
    ['a shell string as command', (c: Record<string, unknown>) => ({ ...c, reload_command: `${expected.defaults.reload_command.join(' ')}; rm -rf /` })],
    ['an empty command', (c: Record<string, unknown>) => ({ ...c, validate_command: [] })],
    ['an unknown field', (c: Record<string, unknown>) => ({ ...c, post_hook: '/bin/sh' })],
    ['a verify block without a port', (c: Record<string, unknown>) => ({ ...c, verify: { host: '127.0.0.1' } })],
  ])('the kernel refuses %s', (_what, mutate) => {
    expect(validate(mutate({ ...good }))).toBe(false);
  });

  it.runIf(name === 'haproxy')('lets the operator turn validation off with null (HAProxy validation is optional)', async () => {
    const config: Record<string, unknown> = { ...good, validate_command: null };
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    expect(readFileTargetConfig({ pathFields: { pem_path: true }, validateCommand: { field: 'validate_command', default: ['/usr/sbin/haproxy', '-c'] }, needsKey: true, files: () => [] }, config as never).validate).toBeNull();
  });

  it('leaves argv[0] checks that JSON schema cannot express to the plugin', async () => {
    const plugin = (await import(`../../plugins/targets/${name}/dist/index.js`)).default as { validateConfig(r: object, ctx: { config: object }): Promise<{ ok: boolean; reason?: string }> };
    const cfg = { ...good, reload_command: [`${expected.defaults.reload_command.join(' ')}; rm -rf /`] };
    expect(validate(structuredClone(cfg))).toBe(true);
    expect(await plugin.validateConfig({}, { config: cfg })).toMatchObject({ ok: false, reason: expect.stringMatching(/reload_command: the command path may hold only/) });
    expect(await plugin.validateConfig({}, { config: good })).toEqual({ ok: true });
    expect(() => readFileTargetConfig({ pathFields: { a: true, b: true }, needsKey: false, files: () => [] } as FileTargetSpec, { a: '/x/y', b: '/x/y' })).toThrow(/name the same file/);
  });
});
