import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Starting the sandbox child process. It always runs the *compiled* entry
 * (kernel/dist/.../sandbox-process.js), also when the kernel itself runs from
 * TypeScript sources under the test runner, and it never inherits the kernel's
 * environment, arguments or stdio.
 */

const ENTRY_NAME = 'sandbox-process.js';

/** kernel/dist/plugins/runners/isolate/sandbox-process.js, from either src or dist. */
export function defaultSandboxEntry(): string {
  const here = fileURLToPath(import.meta.url);
  let dir = path.dirname(here);
  if (here.endsWith('.ts')) {
    const marker = `${path.sep}src${path.sep}`;
    const at = dir.lastIndexOf(marker);
    if (at >= 0) dir = `${dir.slice(0, at)}${path.sep}dist${path.sep}${dir.slice(at + marker.length)}`;
  }
  return path.join(dir, ENTRY_NAME);
}

/**
 * Node's permission model, where available: the child may read only its own
 * code and isolated-vm, and may not write files, spawn processes or start
 * workers. Defence in depth for the case where plugin code escapes the isolate.
 */
function permissionArgs(entry: string): string[] {
  const flags = process.allowedNodeEnvironmentFlags;
  const major = Number(process.versions.node.split('.')[0]);
  const permission = major >= 22 ? '--permission' : '--experimental-permission';
  if (!flags.has(permission) || !flags.has('--allow-addons') || !flags.has('--allow-fs-read')) return [];
  const ivmDir = path.dirname(createRequire(import.meta.url).resolve('isolated-vm/package.json'));
  return [permission, '--allow-addons', `--allow-fs-read=${path.dirname(entry)}${path.sep}*`, `--allow-fs-read=${ivmDir}${path.sep}*`];
}

export interface LaunchOptions {
  entry: string;
  /** Use Node's permission model when the runtime has it (default true). */
  restrict: boolean;
}

export function launchSandbox(opts: LaunchOptions): ChildProcess {
  if (!fs.existsSync(opts.entry)) throw new Error(`the sandbox entry ${opts.entry} does not exist (build the kernel with tsc -b)`);
  return fork(opts.entry, [], {
    // isolated-vm needs --no-node-snapshot on Node >= 20.
    execArgv: ['--no-node-snapshot', '--no-warnings', ...(opts.restrict ? permissionArgs(opts.entry) : [])],
    env: {},
    cwd: path.dirname(opts.entry),
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'json',
  });
}
