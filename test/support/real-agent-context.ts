import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import type { Json } from '@certctl/sdk';
import { AgentPluginHost, type TargetInstance } from '../../agent/src/agent-plugin-host.js';
import { LocalKv } from '../../agent/src/local-kv.js';

/**
 * Target plugins run exactly as `certctl agent` runs them for a job: the agent's
 * plugin host finds the workspace plugin, checks the instance config against its
 * schema, derives the job's grants (config-named paths and commands, the key file
 * read-only), and runs the plugin in a real worker thread whose fs, exec and kv go
 * through the agent's broker to the real disk and real processes. Keys live in a
 * key directory no plugin may write, as on a real agent.
 */
export interface RealAgent {
  /** Where the agent keeps private keys (protected from plugins, except the job's own key file for reading). */
  keyDir: string;
  /** Writes a private key into the key directory, as the agent's keygen would (0600); returns its path. */
  storeKey(name: string, keyPem: string): string;
  /** One job's call: a fresh session with that job's grants, closed afterwards. */
  call<T = Record<string, Json>>(target: TargetInstance, method: string, request: Json, opts?: { keyPath?: string; timeoutMs?: number }): Promise<T>;
}

const TEST_ALLOWED_COMMANDS = ['/usr/bin/false', '/usr/bin/openssl', '/usr/bin/pkill', '/bin/sh'];

export function createRealAgent(dir: string): RealAgent {
  const keyDir = path.join(dir, 'agent-keys');
  const stateDir = path.join(dir, 'agent-state');
  fs.mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const host = new AgentPluginHost({
    pluginDirs: [],
    log: pino({ level: process.env.CERTCTL_TEST_LOG ?? 'silent' }),
    kv: new LocalKv(stateDir),
    // As an operator would configure it: CERTCTL_AGENT_ALLOWED_PATHS is the test's directory, and
    // CERTCTL_AGENT_ALLOWED_COMMANDS adds what the tests run beyond the manifests' commands (a failing
    // validate, openssl as a stand-in check, pkill for a pid-file reload, sh for recorded reloads).
    policy: { allowedPaths: [fs.realpathSync(dir)], allowedCommands: TEST_ALLOWED_COMMANDS, protectedDirs: [fs.realpathSync(keyDir), fs.realpathSync(stateDir)] },
  });
  return {
    keyDir,
    storeKey(name, keyPem) {
      const file = path.join(keyDir, `${name}.key`);
      fs.writeFileSync(file, keyPem, { mode: 0o600 });
      return file;
    },
    async call<T>(target: TargetInstance, method: string, request: Json, opts: { keyPath?: string; timeoutMs?: number } = {}) {
      const session = host.open(target, opts.keyPath ? { keyPath: opts.keyPath } : {});
      try {
        return await session.call<T>(method, request, opts.timeoutMs ?? 30_000);
      } finally {
        await session.close();
      }
    },
  };
}
