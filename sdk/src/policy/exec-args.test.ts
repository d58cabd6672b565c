import { describe, expect, it } from 'vitest';
import { execProblem } from './broker-rules.js';
import { argsAllowed, commandKeywordProblem, configSchemaCommandProblem, configCommandGrant, execCapabilityOf, manifestExecGrants, manifestExecProblem } from './exec-args.js';

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
});
