import { describe, expect, it } from 'vitest';
import { checkExec, ExecFailed, ExecRefused, runDeclaredCommand } from './agent-exec.js';

describe('agent exec capability checks', () => {
  it('runs only exactly declared absolute commands with argument arrays, no shell', async () => {
    const r = await runDeclaredCommand('/bin/echo', ['hello', '$(id)', '; rm -rf /'], ['/bin/echo']);
    expect(r).toEqual({ exitCode: 0, stdout: 'hello $(id) ; rm -rf /\n', stderr: '' });
    const sh = await runDeclaredCommand('/bin/sh', ['-c', 'echo $HOME; exit 3'], ['/bin/sh']);
    expect(sh.exitCode).toBe(3);
    // A minimal environment: nothing of the parent's.
    expect(sh.stdout.trim()).toBe('');
  });

  it('passes stdin', async () => {
    expect((await runDeclaredCommand('/bin/cat', [], ['/bin/cat'], { input: 'piped' })).stdout).toBe('piped');
  });

  it('refuses undeclared, relative or look-alike commands and bad arguments', () => {
    expect(() => checkExec('/bin/echo', [], ['/usr/bin/echo'])).toThrow(ExecRefused);
    expect(() => checkExec('echo', [], ['echo'])).toThrow(/absolute path/);
    expect(() => checkExec('/bin/../bin/echo', [], ['/bin/echo'])).toThrow(/not among the granted commands/);
    expect(() => checkExec('/bin/echo', 'hello', ['/bin/echo'])).toThrow(/array of strings/);
    expect(() => checkExec('/bin/echo', [1], ['/bin/echo'])).toThrow(/array of strings/);
    expect(() => checkExec('/bin/echo', ['a\0b'], ['/bin/echo'])).toThrow(/NUL/);
    expect(checkExec('/bin/echo', ['x'], ['/bin/echo'])).toEqual({ command: '/bin/echo', args: ['x'] });
  });

  it('runs a granted command only with a granted argument list', async () => {
    const grants = [{ command: '/bin/echo', args: [['reload', 'nginx'], ['reload', { regex: 'site-[a-z]+' }]] }];
    expect((await runDeclaredCommand('/bin/echo', ['reload', 'nginx'], grants)).stdout).toBe('reload nginx\n');
    expect((await runDeclaredCommand('/bin/echo', ['reload', 'site-web'], grants)).stdout).toBe('reload site-web\n');
    // Anything else is refused before a process starts: other words, extra or missing arguments, a pattern matched only in part.
    for (const args of [['stop', 'nginx'], ['reload', 'nginx', '--now'], ['reload'], [], ['reload', 'site-web; id'], ['reload', 'xsite-web']]) {
      await expect(runDeclaredCommand('/bin/echo', args, grants), JSON.stringify(args)).rejects.toThrow(ExecRefused);
      expect(() => checkExec('/bin/echo', args, grants)).toThrow(/is not granted with these arguments/);
    }
    // An empty list of argument lists: the command runs only as configured elsewhere, never directly.
    expect(() => checkExec('/bin/echo', [], [{ command: '/bin/echo', args: [] }])).toThrow(ExecRefused);
  });

  it('kills a command past its timeout or its output cap', async () => {
    const t0 = Date.now();
    await expect(runDeclaredCommand('/bin/sleep', ['5'], ['/bin/sleep'], { timeoutMs: 200 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(Date.now() - t0).toBeLessThan(2000);
    await expect(runDeclaredCommand('/usr/bin/yes', [], ['/usr/bin/yes'], { maxOutputBytes: 10_000 })).rejects.toBeInstanceOf(ExecFailed);
    await expect(runDeclaredCommand('/nonexistent/cmd', [], ['/nonexistent/cmd'])).rejects.toMatchObject({ code: 'ESPAWN' });
  });
});
