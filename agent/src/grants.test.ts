import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from './config.js';
import fs from 'node:fs';
import { execProblem, markedValues, pathArgCheck } from '@certctl/sdk/policy';
import { commandProblem, deriveCallGrants, parseAllowlist, pathProblem, urlHostRule, type LocalGrantPolicy } from './grants.js';

const schema = {
  type: 'object',
  properties: {
    cert_path: { type: 'string', 'x-certctl-path': true },
    key_path: { type: 'string', 'x-certctl-path': true },
    extra_paths: { type: 'array', items: { type: 'string' }, 'x-certctl-path': true },
    reload: { type: 'array', items: { type: 'string' }, 'x-certctl-command': true },
    admin_url: { type: 'string', 'x-certctl-url': true },
    nested: { type: 'object', properties: { bundle: { type: 'string', 'x-certctl-path': true } } },
    sites: { type: 'array', items: { type: 'object', properties: { file: { type: 'string', 'x-certctl-path': true } } } },
    label: { type: 'string' },
  },
};
/** The granted command paths, once each. */
const commandsOf = (g: { exec: { command: string }[] }) => [...new Set(g.exec.map((e) => e.command))];
const open: LocalGrantPolicy = { allowedPaths: ['/etc', '/srv'], allowedCommands: [], protectedDirs: ['/var/lib/certctl/keys', '/var/lib/certctl/agent'] };
/** What an agent started without CERTCTL_AGENT_ALLOWED_PATHS / _COMMANDS enforces. */
const defaults: LocalGrantPolicy = { allowedPaths: loadAgentConfig({}).allowedPaths, allowedCommands: loadAgentConfig({}).allowedCommands, protectedDirs: open.protectedDirs };

describe('config-derived grants', () => {
  it('collects marked fields through properties, nested objects and array items', () => {
    const config = { cert_path: '/etc/ssl/a.crt', nested: { bundle: '/etc/ssl/b.pem' }, sites: [{ file: '/srv/c.pem' }, { file: '/srv/d.pem' }], label: '/not/a/grant' };
    expect(markedValues(schema, config, 'x-certctl-path')).toEqual(['/etc/ssl/a.crt', '/etc/ssl/b.pem', '/srv/c.pem', '/srv/d.pem']);
  });

  it('unites manifest and config grants, adds the key file read-only, derives the URL origin', () => {
    const g = deriveCallGrants({
      manifest: { fs: { paths: ['/etc/nginx/certs'] }, exec: { commands: ['/usr/sbin/nginx'] }, http: { hosts: ['api.example.com'] }, kv: true },
      configSchema: schema,
      config: { cert_path: '/etc/ssl/site.crt', key_path: '/etc/ssl/site.key', reload: ['/usr/bin/systemctl', 'reload', 'nginx'], admin_url: 'http://127.0.0.1:2019/load' },
      keyPath: '/var/lib/certctl/keys/mc-web/abc.key',
      policy: { ...open, allowedCommands: ['/usr/bin/systemctl'] },
    });
    expect(g.fsWrite).toEqual(['/etc/nginx/certs', '/etc/ssl/site.crt', '/etc/ssl/site.key']);
    expect(g.fsRead).toEqual(['/var/lib/certctl/keys/mc-web/abc.key']);
    // The manifest's command without argument lists runs with any; a configured argv exactly as configured.
    expect(g.exec).toEqual([{ command: '/usr/sbin/nginx', args: null }, { command: '/usr/bin/systemctl', args: [['reload', 'nginx']] }]);
    expect(g.httpHosts).toEqual(['api.example.com', 'http://127.0.0.1:2019']);
    expect(g.kv).toBe(true);
    expect(g.refused).toEqual([]);
  });

  it('refuses relative paths, .., NUL, the root and the agent\'s own directories', () => {
    const g = deriveCallGrants({
      manifest: {},
      configSchema: schema,
      config: { cert_path: 'relative/site.crt', key_path: '/etc/ssl/../shadow', extra_paths: ['/etc/ok.pem', '/etc/x\0y', '/', '/var/lib/certctl/keys/mc-other/k.key', '/var/lib/certctl/agent/credentials.json'] },
      policy: open,
    });
    expect(g.fsWrite).toEqual(['/etc/ok.pem']);
    expect(g.refused.join('\n')).toMatch(/not absolute/);
    expect(g.refused.join('\n')).toMatch(/contains "\.\."/);
    expect(g.refused.join('\n')).toMatch(/NUL/);
    expect(g.refused.join('\n')).toMatch(/root cannot be granted/);
    expect(g.refused.filter((r) => r.includes('key or state directory'))).toHaveLength(2);
  });

  it('refuses commands that are relative or carry shell metacharacters', () => {
    for (const bad of [['nginx', '-s', 'reload'], ['/bin/sh -c', 'x'], ['/usr/bin/x;rm'], ['/usr/bin/$(id)'], ['/usr/bin/a|b'], ['/usr/bin/`id`'], ['/usr/../bin/sh'], []]) {
      const g = deriveCallGrants({ manifest: {}, configSchema: schema, config: { reload: bad }, policy: open });
      expect(g.exec, JSON.stringify(bad)).toEqual([]);
      expect(g.refused.length, JSON.stringify(bad)).toBe(1);
    }
    expect(commandProblem('/usr/sbin/nginx')).toBeNull();
    expect(commandProblem('/opt/my tool/bin')).toMatch(/no spaces or shell characters/);
  });

  it('intersects with the agent-local allowlists', () => {
    const g = deriveCallGrants({
      manifest: { fs: { paths: ['/etc'] }, exec: { commands: ['/usr/sbin/nginx'] } },
      configSchema: schema,
      config: { cert_path: '/etc/ssl/site.crt', key_path: '/etc/shadow', reload: ['/bin/sh', '-c', 'id'] },
      policy: { ...open, allowedPaths: ['/etc/ssl'], allowedCommands: ['/usr/sbin/nginx'] },
    });
    // /etc narrows to the allowed /etc/ssl; /etc/shadow is never granted; /bin/sh is a shell nobody listed.
    expect(g.fsWrite).toEqual(['/etc/ssl', '/etc/ssl/site.crt']);
    expect(commandsOf(g)).toEqual(['/usr/sbin/nginx']);
    expect(g.refused).toEqual(expect.arrayContaining([expect.stringMatching(/^fs \/etc\/shadow is a system account/), expect.stringMatching(/^exec \(config\): \/bin\/sh is a shell or interpreter/)]));
  });

  it('turns URLs into origin rules and refuses the rest', () => {
    expect(urlHostRule('https://ca.example.com/api/v1')).toBe('ca.example.com:443');
    expect(urlHostRule('http://10.0.0.5:8080/x')).toBe('http://10.0.0.5:8080');
    expect(urlHostRule('https://[::1]:8443/')).toBe('[::1]:8443');
    expect(urlHostRule('file:///etc/passwd')).toEqual({ problem: expect.stringMatching(/file:/) });
    expect(urlHostRule('https://user:pw@x.example/')).toEqual({ problem: expect.stringMatching(/credentials/) });
    expect(urlHostRule('not a url')).toEqual({ problem: expect.stringMatching(/not a URL/) });
  });

  it('parses allowlists strictly', () => {
    expect(parseAllowlist(undefined, 'X', pathProblem)).toBeNull();
    expect(parseAllowlist(' ', 'X', pathProblem)).toBeNull();
    expect(parseAllowlist('/etc/ssl, /srv/certs/', 'X', pathProblem)).toEqual(['/etc/ssl', '/srv/certs']);
    expect(() => parseAllowlist('/etc/ssl,relative', 'CERTCTL_AGENT_ALLOWED_PATHS', pathProblem)).toThrow(/CERTCTL_AGENT_ALLOWED_PATHS: .*not absolute/);
    expect(() => parseAllowlist('/bin/sh -c', 'X', commandProblem)).toThrow(/no spaces or shell characters/);
  });

  it('never derives a grant to cloud metadata or unspecified addresses, however the URL spells them', () => {
    for (const bad of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/', 'http://[::ffff:a9fe:a9fe]/', 'http://2852039166/',
      'http://0xa9.0xfe.0xa9.0xfe/', 'http://169.254.170.2/v2/credentials', 'http://[fd00:ec2::254]/', 'http://100.100.100.200/', 'http://168.63.129.16/', 'http://0.0.0.0:2019/']) {
      expect(urlHostRule(bad), bad).toEqual({ problem: expect.stringMatching(/metadata|unspecified/) });
      const g = deriveCallGrants({ manifest: {}, configSchema: schema, config: { admin_url: bad }, policy: open });
      expect(g.httpHosts, bad).toEqual([]);
      expect(g.refused, bad).toEqual([expect.stringMatching(/^http \(config\): .*config cannot grant it/)]);
    }
    // Loopback and private origins stay grantable: the operator named them.
    expect(urlHostRule('http://127.0.0.1:2019/load')).toBe('http://127.0.0.1:2019');
    expect(urlHostRule('https://10.1.2.3/')).toBe('10.1.2.3:443');
  });

  it('keeps the manifest\'s argument lists, and a schema field\'s lists after the configured argv', () => {
    const toolSchema = { type: 'object', properties: { tool: { type: 'array', items: { type: 'string' }, 'x-certctl-command': { args: [['-list', { regex: '/[^\\r\\n]*' }]] } } } };
    const g = deriveCallGrants({
      manifest: { exec: { commands: ['/usr/bin/systemctl', '/usr/bin/keytool'], args: { '/usr/bin/systemctl': [['reload', 'nginx']] } } },
      configSchema: toolSchema, config: { tool: ['/usr/bin/keytool', '-J-Xmx64m'] }, policy: open,
    });
    expect(g.exec).toEqual([
      { command: '/usr/bin/systemctl', args: [['reload', 'nginx']] },
      { command: '/usr/bin/keytool', args: null },
      { command: '/usr/bin/keytool', args: [['-J-Xmx64m', '-list', { regex: '/[^\\r\\n]*' }]] },
    ]);
  });

  it('a configured command line of a command the manifest declares with lists must be one of them', () => {
    const haproxy = { exec: { commands: ['/usr/sbin/haproxy', '/usr/bin/systemctl'], args: { '/usr/sbin/haproxy': [['-c', '-f', { regex: '/[^\\r\\n]*' }]], '/usr/bin/systemctl': [['reload', 'haproxy']] } } };
    const grant = (reload: string[], policy = open) => deriveCallGrants({ manifest: haproxy, configSchema: schema, config: { reload }, policy });
    expect(grant(['/usr/bin/systemctl', 'reload', 'haproxy']).exec).toContainEqual({ command: '/usr/bin/systemctl', args: [['reload', 'haproxy']] });
    for (const argv of [['/usr/bin/systemctl', 'stop', 'sshd'], ['/usr/bin/systemctl'], ['/usr/sbin/haproxy', '-f', '/tmp/evil.cfg', '-db'], ['/bin/systemctl', 'stop', 'sshd']]) {
      const g = grant(argv);
      // Only the manifest's own grants remain: nothing runs `systemctl stop sshd`.
      expect(g.exec, argv.join(' ')).toEqual([{ command: '/usr/sbin/haproxy', args: haproxy.exec.args['/usr/sbin/haproxy'] }, { command: '/usr/bin/systemctl', args: [['reload', 'haproxy']] }]);
      if (argv[0] !== '/bin/systemctl') expect(g.refused, argv.join(' ')).toEqual([expect.stringMatching(/only with its argument lists \(capabilities\.exec\.args\)/)]);
      expect(g.exec.some((e) => execProblem(e.command, ['stop', 'sshd'], [e]) === null)).toBe(false);
    }
    // Listing the declared command on the agent does not lift its lists; the administrator widens by listing another command.
    expect(grant(['/usr/bin/systemctl', 'stop', 'sshd'], { ...open, allowedCommands: ['/usr/bin/systemctl'] }).refused).toEqual([expect.stringMatching(/only with its argument lists/)]);
    expect(grant(['/usr/local/sbin/restart-haproxy', '--now'], { ...open, allowedCommands: ['/usr/local/sbin/restart-haproxy'] }).exec)
      .toContainEqual({ command: '/usr/local/sbin/restart-haproxy', args: [['--now']] });
  });

  it('the jks manifest\'s file arguments admit only the call\'s granted paths', () => {
    const jks = JSON.parse(fs.readFileSync(new URL('../../plugins/targets/jks/package.json', import.meta.url), 'utf8')).certctl;
    const work = '/var/lib/certctl/jks';
    const key = '/var/lib/certctl/keys/mc-1/k1.pem';
    const g = deriveCallGrants({ manifest: jks.capabilities, configSchema: jks.configSchema, config: { keystore_path: '/opt/app/keystore.jks', work_dir: work, keytool_command: ['/usr/bin/keytool'], openssl_command: ['/usr/bin/openssl'] },
      keyPath: key, policy: { ...open, allowedPaths: ['/opt/app', work] } });
    expect(g.refused).toEqual([]);
    const pathOk = pathArgCheck({ write: g.fsWrite, read: g.fsRead });
    const pkcs12 = (inFile: string, keyFile: string, out: string) => ['pkcs12', '-export', '-in', inFile, '-inkey', keyFile, '-name', 'server', '-out', out, '-passout', `file:${work}/.certctl-a.pass`];
    const keytool = (src: string, dest: string) => ['-importkeystore', '-noprompt', '-srckeystore', src, '-srcstoretype', 'PKCS12', '-srcstorepass:file', `${work}/.certctl-a.pass`, '-srcalias', 'server',
      '-destkeystore', dest, '-deststoretype', 'JKS', '-deststorepass:file', `${work}/.certctl-a.pass`, '-destalias', 'server'];
    expect(execProblem('/usr/bin/openssl', pkcs12(`${work}/chain.pem`, key, `${work}/bundle.p12`), g.exec, pathOk)).toBeNull();
    expect(execProblem('/usr/bin/keytool', keytool(`${work}/bundle.p12`, '/opt/app/keystore.jks'), g.exec, pathOk)).toBeNull();
    for (const [cmd, args] of [
      ['/usr/bin/openssl', pkcs12('/etc/shadow', key, `${work}/bundle.p12`)],
      ['/usr/bin/openssl', pkcs12(`${work}/chain.pem`, '/var/lib/certctl/keys/mc-2/other.pem', `${work}/bundle.p12`)],
      ['/usr/bin/openssl', pkcs12(`${work}/chain.pem`, key, '/etc/cron.d/certctl')],
      ['/usr/bin/openssl', pkcs12(`${work}/chain.pem`, key, key)],
      ['/usr/bin/keytool', keytool('/root/.keystore', '/opt/app/keystore.jks')],
      ['/usr/bin/keytool', keytool(`${work}/bundle.p12`, '/etc/ssl/other.jks')],
      ['/usr/bin/keytool', keytool(`${work}/bundle.p12`, `${work}/../../../../etc/x.jks`)],
    ] as const) expect(execProblem(cmd, args, g.exec, pathOk), args.join(' ')).toMatch(/not granted with these arguments/);
  });

  describe('deny by default (no CERTCTL_AGENT_ALLOWED_PATHS / _COMMANDS)', () => {
    const nginxManifest = { kv: true, fs: { paths: [] }, exec: { commands: ['/usr/sbin/nginx'] } };
    const grant = (config: Record<string, unknown>, policy = defaults, manifest: typeof nginxManifest = nginxManifest) => deriveCallGrants({ manifest, configSchema: schema, config, policy });

    it('runs only the manifest\'s commands; a config cannot name a shell or an undeclared program', () => {
      expect(commandsOf(grant({ reload: ['/usr/sbin/nginx', '-s', 'reload'] }))).toEqual(['/usr/sbin/nginx']);
      for (const argv of [['/bin/sh', '-c', 'id'], ['/usr/bin/bash', '-c', 'id'], ['/usr/bin/env', 'sh'], ['/usr/bin/python3', '-c', 'x'], ['/usr/bin/python3.11'], ['/usr/bin/perl', '-e', 'x'],
        ['/usr/bin/awk', 'BEGIN{system("id")}'], ['/bin/busybox', 'sh'], ['/usr/bin/tee', '/etc/cron.d/x'], ['/usr/bin/cp']]) {
        const g = grant({ reload: argv });
        expect(commandsOf(g), argv[0]).toEqual(['/usr/sbin/nginx']);
        expect(g.refused, argv[0]).toEqual([expect.stringMatching(/shell or interpreter|neither declared by the plugin's manifest/)]);
      }
    });

    it('a shell or interpreter needs its exact path in CERTCTL_AGENT_ALLOWED_COMMANDS, even when a manifest declares it', () => {
      const listed = { ...defaults, allowedCommands: ['/bin/sh', '/usr/bin/tee'] };
      expect(commandsOf(grant({ reload: ['/bin/sh', '-c', 'echo ok'] }, listed))).toEqual(['/usr/sbin/nginx', '/bin/sh']);
      expect(commandsOf(grant({ reload: ['/usr/bin/tee', '/etc/ssl/x'] }, listed))).toEqual(['/usr/sbin/nginx', '/usr/bin/tee']);
      expect(commandsOf(grant({ reload: ['/usr/bin/dash', '-c', 'id'] }, listed))).toEqual(['/usr/sbin/nginx']);
      const sneaky = grant({}, defaults, { kv: true, fs: { paths: [] }, exec: { commands: ['/usr/sbin/nginx', '/bin/bash', '/usr/bin/python3'] } });
      expect(commandsOf(sneaky)).toEqual(['/usr/sbin/nginx']);
      expect(sneaky.refused).toHaveLength(2);
    });

    it('writes only to the usual certificate directories, never to account, sudo, cron, ssh or kernel files', () => {
      const ok = ['/etc/nginx/tls/site.crt', '/etc/ssl/private/site.key', '/etc/haproxy/certs/site.pem', '/var/lib/certctl/deploy/site.pem'];
      expect(grant({ extra_paths: ok }).fsWrite).toEqual(ok);
      const bad = ['/root/.ssh/authorized_keys', '/home/deploy/.ssh/authorized_keys', '/etc/cron.d/x', '/etc/crontab', '/etc/sudoers', '/etc/sudoers.d/x', '/etc/passwd',
        '/etc/shadow', '/boot/grub/grub.cfg', '/proc/sys/kernel/core_pattern', '/sys/kernel/x', '/dev/sda', '/srv/www/site.pem', '/usr/bin/nginx', '/etc/profile.d/x.sh'];
      const g = grant({ extra_paths: bad });
      expect(g.fsWrite).toEqual([]);
      expect(g.refused).toHaveLength(bad.length);
      // Even an operator's allowlist that covers them does not open the always-refused ones.
      const wide = grant({ extra_paths: ['/etc/cron.d/x', '/etc/ssl/a.pem', '/etc/sudoers.d/y', '/home/u/.ssh/authorized_keys'] }, { ...defaults, allowedPaths: ['/etc', '/home'] });
      expect(wide.fsWrite).toEqual(['/etc/ssl/a.pem']);
      expect(() => loadAgentConfig({ CERTCTL_AGENT_ALLOWED_PATHS: '/etc/ssl,/root' })).toThrow(/CERTCTL_AGENT_ALLOWED_PATHS: \/root is under \/root/);
    });
  });
});
