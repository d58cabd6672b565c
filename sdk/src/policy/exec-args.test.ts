import { describe, expect, it } from 'vitest';
import { execProblem, pathArgCheck } from './broker-rules.js';
import { configuredCommandProblem } from './config-marks.js';
import { argsAllowed, commandKeywordProblem, configCommandProblem, configSchemaCommandProblem, configCommandGrant, execCapabilityOf, execArgRulesProblem, manifestExecGrants, manifestExecProblem, type ExecArgRule } from './exec-args.js';

describe('exec argument lists', () => {
  it('match position by position, whole arguments, same length', () => {
    const rules = [['reload', 'nginx'], ['-c', '-f', { regex: '/etc/haproxy/[a-z]+\\.cfg' }]];
    expect(argsAllowed(rules, ['reload', 'nginx'])).toBe(true);
    expect(argsAllowed(rules, ['-c', '-f', '/etc/haproxy/main.cfg'])).toBe(true);
    for (const bad of [['reload'], ['reload', 'nginx', 'x'], ['restart', 'nginx'], ['-c', '-f', '/etc/haproxy/main.cfg.bak'], ['-c', '-f', 'x/etc/haproxy/a.cfg'], []]) {
      expect(argsAllowed(rules, bad), JSON.stringify(bad)).toBe(false);
    }
    expect(argsAllowed(null, ['anything'])).toBe(true);
    expect(argsAllowed([], [])).toBe(false);
    // A regex alternation cannot escape the anchors.
    expect(argsAllowed([[{ regex: 'a|b' }]], ['a'])).toBe(true);
    expect(argsAllowed([[{ regex: 'a|b' }]], ['ab'])).toBe(false);
    // Nor can a pattern that is no regular expression by itself close the anchoring group (`^(?:a)|(b)$`).
    expect(argsAllowed([[{ regex: 'a)|(b' }]], ['xb'])).toBe(false);
    expect(argsAllowed([[{ regex: 'a)|(b' }]], ['ax'])).toBe(false);
  });

  it('execProblem refuses arguments outside every grant of the command', () => {
    const grants = [{ command: '/usr/bin/systemctl', args: [['reload', 'nginx']] }, { command: '/usr/bin/systemctl', args: [['reload', 'haproxy']] }];
    expect(execProblem('/usr/bin/systemctl', ['reload', 'haproxy'], grants)).toBeNull();
    expect(execProblem('/usr/bin/systemctl', ['stop', 'sshd'], grants)).toMatch(/not granted with these arguments/);
    // A plain string grant keeps any arguments (manifests without argument lists).
    expect(execProblem('/usr/bin/systemctl', ['stop', 'sshd'], ['/usr/bin/systemctl'])).toBeNull();
  });

  it('a manifest\'s lists apply to its commands; undeclared commands and bad patterns are refused at install', () => {
    const exec = { commands: ['/usr/sbin/nginx', '/usr/bin/caddy', '/usr/bin/tool'], args: { '/usr/sbin/nginx': [['-t'], ['-s', 'reload']], '/usr/bin/caddy': [] } };
    expect(manifestExecGrants(exec)).toEqual([
      { command: '/usr/sbin/nginx', args: [['-t'], ['-s', 'reload']] }, { command: '/usr/bin/caddy', args: [] }, { command: '/usr/bin/tool', args: null },
    ]);
    expect(manifestExecProblem(exec)).toBeNull();
    expect(manifestExecProblem({ commands: ['/a'], args: { '/b': [] } })).toMatch(/does not declare/);
    expect(manifestExecProblem({ commands: ['/a'], args: { '/a': [[{ regex: '(' }]] } })).toMatch(/not a valid regular expression/);
    expect(manifestExecProblem({ commands: ['/a'], args: { '/a': [[{ regex: 'x', flags: 'i' }]] } })).toMatch(/literal string or/);
  });

  it('a configured argv is fixed, unless its schema field lists the arguments the plugin adds', () => {
    expect(configCommandGrant(['/usr/bin/systemctl', 'reload', 'nginx'], true)).toEqual({ command: '/usr/bin/systemctl', args: [['reload', 'nginx']] });
    expect(configCommandGrant(['/opt/jdk/bin/keytool', '-J-Xmx64m'], { args: [['-list'], ['-delete', { regex: '[a-z]+' }]] }))
      .toEqual({ command: '/opt/jdk/bin/keytool', args: [['-J-Xmx64m', '-list'], ['-J-Xmx64m', '-delete', { regex: '[a-z]+' }]] });
    expect(commandKeywordProblem(true)).toBeNull();
    expect(commandKeywordProblem({ args: [['-list']] })).toBeNull();
    expect(commandKeywordProblem({ args: 'x' })).toMatch(/argument lists must be an array/);
    expect(commandKeywordProblem('yes')).toMatch(/true or/);
    const schema = { type: 'object', properties: { ok: { 'x-certctl-command': true }, nested: { type: 'object', properties: { bad: { 'x-certctl-command': { args: [[{ regex: '[' }]] } } } } } };
    expect(configSchemaCommandProblem(schema)).toMatch(/^configSchema\/nested\/bad: .*not a valid regular expression/);
  });

  it('merges grants into a manifest-shaped capability allowing what any of them allows', () => {
    expect(execCapabilityOf([
      { command: '/a', args: [['x']] }, { command: '/a', args: [['y']] }, { command: '/b', args: [['z']] }, { command: '/b', args: null },
    ])).toEqual({ commands: ['/a', '/b'], args: { '/a': [['x'], ['y']] } });
  });

  it('a path position admits only absolute, normalised paths inside the call\'s granted paths', () => {
    const pathOk = pathArgCheck({ write: ['/srv/app/keystore.jks', '/srv/app/work'], read: ['/var/lib/agent/keys/k1.pem'] });
    const rules: ExecArgRule[] = [['-in', { path: 'read' }, '-out', { path: 'write' }]];
    expect(argsAllowed(rules, ['-in', '/var/lib/agent/keys/k1.pem', '-out', '/srv/app/work/b.p12'], pathOk)).toBe(true);
    expect(argsAllowed(rules, ['-in', '/srv/app/work/chain.pem', '-out', '/srv/app/keystore.jks'], pathOk)).toBe(true);
    for (const [input, out] of [
      ['/etc/shadow', '/srv/app/work/b.p12'], // read outside the grants
      ['/srv/app/work/chain.pem', '/root/.ssh/authorized_keys'], // write outside the grants
      ['/srv/app/work/chain.pem', '/var/lib/agent/keys/k1.pem'], // the key file is read only
      ['/srv/app/work/../../../etc/shadow', '/srv/app/work/b.p12'], // `..`
      ['/srv/app/work//chain.pem', '/srv/app/work/b.p12'], // not normalised
      ['/srv/app/work/./chain.pem', '/srv/app/work/b.p12'],
      ['srv/app/work/chain.pem', '/srv/app/work/b.p12'], // relative
      ['/srv/app/workshop/x', '/srv/app/work/b.p12'], // a sibling sharing the prefix
    ]) expect(argsAllowed(rules, ['-in', input, '-out', out], pathOk), `${input} ${out}`).toBe(false);
    // Without the call's paths no path position matches.
    expect(argsAllowed(rules, ['-in', '/srv/app/work/chain.pem', '-out', '/srv/app/work/b.p12'])).toBe(false);
    expect(execProblem('/usr/bin/openssl', ['-in', '/srv/app/work/c.pem', '-out', '/etc/cron.d/x'], [{ command: '/usr/bin/openssl', args: rules }], pathOk)).toMatch(/not granted with these arguments/);
    expect(execArgRulesProblem([[{ path: 'read' }, { path: 'write' }]])).toBeNull();
    expect(execArgRulesProblem([[{ path: 'execute' }]])).toMatch(/literal string or/);
  });

  it('a configured command line must be one of the manifest\'s lists for a command it declares with lists', () => {
    const haproxy = [['reload', 'haproxy']];
    expect(configCommandProblem(['/usr/bin/systemctl', 'reload', 'haproxy'], true, haproxy)).toBeNull();
    expect(configCommandProblem(['/usr/bin/systemctl', 'stop', 'sshd'], true, haproxy)).toMatch(/only with its argument lists/);
    expect(configCommandProblem(['/usr/bin/systemctl'], true, haproxy)).toMatch(/only with its argument lists/);
    expect(configCommandProblem(['/usr/sbin/nginx', '-g', 'load_module /tmp/x.so;'], true, [['-t'], ['-s', 'reload']])).toMatch(/only with its argument lists/);
    // No lists for the command (not declared, or declared without lists): the agent's allowlist decides, the argv runs as configured.
    expect(configCommandProblem(['/usr/local/sbin/reload-haproxy', 'anything'], true, null)).toBeNull();
    // An { args } mark: each command line the config grants (its argv, then one of the mark's lists) must be a manifest list.
    const lists: ExecArgRule[] = [['-list', '-keystore', { path: 'read' }], ['-delete', '-keystore', { path: 'write' }]];
    expect(configCommandProblem(['/usr/bin/keytool'], { args: lists }, lists)).toBeNull();
    expect(configCommandProblem(['/usr/bin/keytool', '-J-javaagent:/tmp/x.jar'], { args: lists }, lists)).toMatch(/only with its argument lists/);
    expect(configCommandProblem(['/usr/bin/keytool'], { args: [['-list', '-keystore', { regex: '/.*' }]] }, lists)).toMatch(/only with its argument lists/);
    expect(configCommandProblem(['/usr/bin/keytool'], { args: lists }, [lists[0]])).toMatch(/only with its argument lists/);
    // Configured path arguments are checked against the instance's paths.
    const pathOk = pathArgCheck({ write: ['/etc/haproxy/certs/site.pem'] });
    expect(configCommandProblem(['/usr/sbin/x', '-f', '/etc/haproxy/certs/site.pem'], true, [['-f', { path: 'read' }]], pathOk)).toBeNull();
    expect(configCommandProblem(['/usr/sbin/x', '-f', '/etc/passwd'], true, [['-f', { path: 'read' }]], pathOk)).toMatch(/only with its argument lists/);
  });

  it('configuredCommandProblem names the refused config field', () => {
    const capabilities = { exec: { commands: ['/usr/sbin/haproxy', '/usr/bin/systemctl'], args: { '/usr/sbin/haproxy': [['-c', '-f', { path: 'read' as const }]], '/usr/bin/systemctl': [['reload', 'haproxy']] } } };
    const schema = { type: 'object', properties: { pem_path: { type: 'string', 'x-certctl-path': true }, cmds: { type: 'object', properties: { reload: { type: 'array', 'x-certctl-command': true }, check: { type: 'array', 'x-certctl-command': true } } } } };
    const config = (reload: string[], check: string[]) => ({ pem_path: '/etc/haproxy/site.pem', cmds: { reload, check } });
    expect(configuredCommandProblem(capabilities, schema, config(['/usr/bin/systemctl', 'reload', 'haproxy'], ['/usr/sbin/haproxy', '-c', '-f', '/etc/haproxy/site.pem']))).toBeNull();
    expect(configuredCommandProblem(capabilities, schema, config(['/usr/bin/systemctl', 'stop', 'sshd'], ['/usr/sbin/haproxy', '-c', '-f', '/etc/haproxy/site.pem'])))
      .toMatchObject({ at: '/cmds/reload', problem: expect.stringMatching(/systemctl .*only with its argument lists/) });
    // A spelling of a declared command path does not escape its lists.
    expect(configuredCommandProblem(capabilities, schema, config(['/usr/bin//systemctl', 'stop', 'sshd'], []))).toMatchObject({ at: '/cmds/reload' });
    expect(configuredCommandProblem(capabilities, schema, config(['/usr/bin/systemctl', 'reload', 'haproxy'], ['/usr/sbin/haproxy', '-c', '-f', '/etc/shadow']))).toMatchObject({ at: '/cmds/check' });
  });
});
