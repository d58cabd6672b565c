import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = path.join(REPO_ROOT, 'bin', 'certctl.js');

export interface ServeProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the port once the kernel logs that it listens; rejects if the process exits first. */
  ready: Promise<number>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs the real `certctl serve` (from the built dist) as a child process. */
export function spawnServe(env: Record<string, string>): ServeProcess {
  if (!fs.existsSync(path.join(REPO_ROOT, 'kernel', 'dist', 'cli.js'))) throw new Error('kernel/dist is missing: run `npx tsc -b` (npm test does)');
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', CERTCTL_SERVER_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = new Promise<number>((resolve, reject) => {
    const check = () => {
      const m = /"url":"https:\/\/localhost:(\d+)"/.exec(out);
      if (m) resolve(Number(m[1]));
    };
    child.stdout!.on('data', check);
    void exited.then((code) => reject(new Error(`certctl exited with ${code} before listening:\n${err}\n${out.slice(-2000)}`)));
  });
  ready.catch(() => {}); // callers that only await `exited` must not see an unhandled rejection
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    ready,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
