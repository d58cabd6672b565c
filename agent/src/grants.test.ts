import { describe, expect, it } from 'vitest';
import { commandProblem, deriveCallGrants, markedValues, parseAllowlist, pathProblem, urlHostRule, type LocalGrantPolicy } from './grants.js';

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
const open: LocalGrantPolicy = { allowedPaths: null, allowedCommands: null, protectedDirs: ['/var/lib/certctl/keys', '/var/lib/certctl/agent'] };

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
      policy: open,
    });
    expect(g.fsWrite).toEqual(['/etc/nginx/certs', '/etc/ssl/site.crt', '/etc/ssl/site.key']);
    expect(g.fsRead).toEqual(['/var/lib/certctl/keys/mc-web/abc.key']);
    expect(g.exec).toEqual(['/usr/sbin/nginx', '/usr/bin/systemctl']);
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
    // /etc narrows to the allowed /etc/ssl; /etc/shadow is outside; /bin/sh is not allowed.
    expect(g.fsWrite).toEqual(['/etc/ssl', '/etc/ssl/site.crt']);
    expect(g.exec).toEqual(['/usr/sbin/nginx']);
    expect(g.refused).toEqual(expect.arrayContaining(['fs /etc/shadow: outside CERTCTL_AGENT_ALLOWED_PATHS', 'exec /bin/sh: not in CERTCTL_AGENT_ALLOWED_COMMANDS']));
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
});
