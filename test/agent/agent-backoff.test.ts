import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { loadConfig } from '../../kernel/src/config.js';
import { startKernel, type Kernel } from '../../kernel/src/kernel.js';
import { freshDatabase, POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { freePort } from '../support/free-port.js';
import { waitFor } from '../support/wait.js';
import { selfSigned, spawnAgent, tempDir, type AgentProcess } from './agent-support.js';

const TOKEN = 'agent-bootstrap-token-backoff-00002';

describe.skipIf(POSTGRES_UNAVAILABLE)('certctl agent while the control plane is away', () => {
  let kernel: Kernel | undefined;
  let dropDb: (() => Promise<void>) | undefined;
  let agent: AgentProcess | undefined;
  const dir = tempDir('certctl-agent-backoff-');
  afterAll(async () => {
    await agent?.stop();
    await kernel?.close();
    await dropDb?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('backs off (saying so once) until a kernel appears, then registers', async () => {
    const port = await freePort();
    // The kernel's certificate exists before the kernel does, so the agent can trust it from the start.
    const tlsId = selfSigned(dir, 'server', 'localhost');
    agent = spawnAgent({
      CERTCTL_SERVER_URL: `https://localhost:${port}`,
      CERTCTL_SERVER_CA_FILE: tlsId.certPath,
      CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN,
      CERTCTL_AGENT_NAME: 'patient-agent',
      CERTCTL_KEY_DIR: path.join(dir, 'keys'),
      CERTCTL_AGENT_STATE_DIR: path.join(dir, 'state'),
      CERTCTL_AGENT_MAX_BACKOFF: '400ms',
      CERTCTL_AGENT_POLL_INTERVAL: '200ms',
    });
    // Several attempts fail (debug lines), but only one warning says the server is away.
    await waitFor('three failed attempts', () => agent!.logs().filter((l) => l.msg === 'control plane still unreachable').length >= 3, 20_000);
    const warnings = agent.logs().filter((l) => l.level >= 40);
    expect(warnings.map((l) => l.msg)).toEqual([expect.stringMatching(/unreachable; retrying with backoff/)]);
    expect(warnings[0].err).toMatch(/ECONNREFUSED/);
    expect(fs.existsSync(path.join(dir, 'state', 'credentials.json'))).toBe(false);

    // A kernel on that port with that certificate (test-kernel.ts always makes its own).
    const { db, drop } = await freshDatabase();
    dropDb = drop;
    kernel = await startKernel(loadConfig({
      CERTCTL_DATA_DIR: path.join(dir, 'data'), CERTCTL_SERVER_HOST: '127.0.0.1', CERTCTL_SERVER_PORT: String(port), CERTCTL_LOG_LEVEL: 'silent',
      CERTCTL_TLS_CERT_PATH: tlsId.certPath, CERTCTL_TLS_KEY_PATH: tlsId.keyPath, CERTCTL_AGENT_BOOTSTRAP_TOKEN: TOKEN,
      CERTCTL_CONFIG_ENCRYPTION_KEY: 'test-encryption-passphrase', CERTCTL_RATE_LIMIT_RPS: '100000', CERTCTL_RATE_LIMIT_BURST: '100000',
    }), { log: pino({ level: 'silent' }), database: db });
    const started = await agent.waitForLog('agent started', (l) => l.msg === 'agent started', 20_000);
    expect(agent.logs().some((l) => l.msg === 'control plane reachable again')).toBe(true);
    const row = await waitFor('the agent row', () => kernel!.db.knex('agents').where({ id: started.agent_id }).first());
    expect(row.name).toBe('patient-agent');
    expect(started.credentials).toBe('registered');
  });

  it('refuses to start on a plain-http server URL or a bad setting, with a message naming it', async () => {
    const bad = spawnAgent({ CERTCTL_SERVER_URL: 'http://localhost:8443', CERTCTL_KEY_DIR: path.join(dir, 'k2'), CERTCTL_AGENT_STATE_DIR: path.join(dir, 's2') });
    const noCreds = spawnAgent({ CERTCTL_SERVER_URL: 'https://localhost:1', CERTCTL_KEY_DIR: path.join(dir, 'k3'), CERTCTL_AGENT_STATE_DIR: path.join(dir, 's3') });
    expect(await Promise.all([bad.exited, noCreds.exited])).toEqual([78, 78]);
    expect(bad.stderr()).toMatch(/CERTCTL_SERVER_URL must be an https:\/\/ URL/);
    expect(noCreds.stderr()).toMatch(/no credentials: set CERTCTL_AGENT_BOOTSTRAP_TOKEN/);
  });
});
