import { spawn } from 'node:child_process';
import type { ExecResult } from '@certctl/sdk';
import { EXEC_ARG_LIMITS, execProblem, type ExecGrant, type PathArgCheck } from '@certctl/sdk/policy';

/**
 * The agent-side `exec` capability: a target plugin runs only the exact absolute
 * commands the operator granted, with the argument lists granted for them
 * (@certctl/sdk/policy exec-args: the manifest's lists, or a configured argv
 * exactly), with arguments as an array (never a shell
 * string), a timeout, a bounded output and a minimal environment. The kernel
 * never grants exec; these functions are for the agent's broker.
 */

export class ExecRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecRefused';
  }
}

/** The command ran but did not finish well (timeout, too much output): the plugin decides what that means. */
export class ExecFailed extends Error {
  constructor(message: string, readonly code: 'ETIMEDOUT' | 'EOUTPUT' | 'ESPAWN') {
    super(message);
    this.name = 'ExecFailed';
  }
}

export const EXEC_LIMITS = { ...EXEC_ARG_LIMITS, defaultTimeoutMs: 30_000, maxTimeoutMs: 300_000, maxOutputBytes: 1024 * 1024, maxInputBytes: 1024 * 1024 };
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Checks a command and its arguments against the grant (@certctl/sdk/policy's rule, as in the SDK's test host); returns them unchanged when allowed. */
export function checkExec(command: unknown, args: unknown, declared: readonly (string | ExecGrant)[], pathOk?: PathArgCheck): { command: string; args: string[] } {
  const problem = execProblem(command, args, declared, pathOk);
  if (problem) throw new ExecRefused(problem);
  return { command: command as string, args: args as string[] };
}

export async function runDeclaredCommand(command: unknown, args: unknown, declared: readonly (string | ExecGrant)[], opts: { timeoutMs?: number; input?: string; maxOutputBytes?: number; pathOk?: PathArgCheck } = {}): Promise<ExecResult> {
  const checked = checkExec(command, args, declared, opts.pathOk);
  const timeoutMs = Math.min(Math.max(1, Number(opts.timeoutMs ?? EXEC_LIMITS.defaultTimeoutMs) || EXEC_LIMITS.defaultTimeoutMs), EXEC_LIMITS.maxTimeoutMs);
  const maxOut = opts.maxOutputBytes ?? EXEC_LIMITS.maxOutputBytes;
  if (opts.input !== undefined && (typeof opts.input !== 'string' || Buffer.byteLength(opts.input) > EXEC_LIMITS.maxInputBytes)) throw new ExecRefused('input must be a string of at most 1 MB');

  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(checked.command, checked.args, { shell: false, env: { PATH: SAFE_PATH, LANG: 'C.UTF-8' }, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let failure: ExecFailed | null = null;
    const stop = (f: ExecFailed) => {
      if (failure) return;
      failure = f;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(new ExecFailed(`${checked.command} did not finish within ${timeoutMs} ms and was killed`, 'ETIMEDOUT')), timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxOut) return stop(new ExecFailed(`${checked.command} wrote more than ${maxOut} bytes of output and was killed`, 'EOUTPUT'));
      into.push(chunk);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new ExecFailed(`${checked.command} could not be started: ${(e as NodeJS.ErrnoException).code ?? e.message}`, 'ESPAWN'));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure) return reject(failure);
      resolve({ exitCode: code ?? (signal ? 128 : -1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
