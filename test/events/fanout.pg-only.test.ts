import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../kernel/src/config.js';
import { openDatabase } from '../../kernel/src/db/database.js';
import { startKernel, type Kernel } from '../../kernel/src/kernel.js';
import { ApiClient } from '../support/http.js';
import { POSTGRES_UNAVAILABLE, dropPostgres, freshPostgresUrl } from '../support/test-db.js';
import { LiveTestClient } from './ws-client.js';

/**
 * Two kernel replicas on one PostgreSQL database: a dashboard connected to replica
 * B sees changes made through replica A (LISTEN/NOTIFY fan-out), exactly once.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('live events fan out across replicas', () => {
  let url: string;
  const kernels: { kernel: Kernel; dataDir: string }[] = [];
  const clients: LiveTestClient[] = [];

  async function replica(): Promise<{ kernel: Kernel; dataDir: string }> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-fanout-'));
    const config = loadConfig({
      CERTCTL_DATA_DIR: dataDir, CERTCTL_SERVER_PORT: '0', CERTCTL_SERVER_HOST: '127.0.0.1', CERTCTL_LOG_LEVEL: 'silent',
      CERTCTL_CONFIG_ENCRYPTION_KEY: 'test-encryption-passphrase', CERTCTL_RATE_LIMIT_RPS: '100000', CERTCTL_RATE_LIMIT_BURST: '100000',
    });
    const kernel = await startKernel(config, { log: pino({ level: 'silent' }), database: await openDatabase({ databaseUrl: url, poolMax: 5 }) });
    const r = { kernel, dataDir };
    kernels.push(r);
    return r;
  }

  beforeAll(async () => {
    url = await freshPostgresUrl();
  });
  afterAll(async () => {
    clients.forEach((c) => c.ws.terminate());
    for (const k of kernels) {
      await k.kernel.close();
      fs.rmSync(k.dataDir, { recursive: true, force: true });
    }
    if (url) await dropPostgres(url);
  });

  it('delivers a change made on replica A to a client of replica B, once', async () => {
    const a = await replica();
    const b = await replica();
    const adminKey = a.kernel.initialAdminKey!;
    expect(adminKey).toBeTruthy();
    const onB = new LiveTestClient(b.kernel.url, b.dataDir);
    const onA = new LiveTestClient(a.kernel.url, a.dataDir);
    clients.push(onA, onB);
    await onB.authenticate(adminKey);
    await onA.authenticate(adminKey);

    const apiA = new ApiClient(a.kernel.url, fs.readFileSync(path.join(a.dataDir, 'tls', 'server.crt'), 'utf8'), adminKey);
    try {
      const team = await apiA.post('/api/v1/teams', { name: 'made-on-a' });
      expect(team.status).toBe(201);
      const seen = await onB.waitFor((m) => m.event?.resource_id === team.body.id);
      expect(seen.event).toMatchObject({ topic: 'team', action: 'team_created' });
      await onA.waitFor((m) => m.event?.resource_id === team.body.id);
      // Let any echo arrive before counting.
      await new Promise((r) => setTimeout(r, 300));
      expect(onB.events().filter((e) => e.resource_id === team.body.id)).toHaveLength(1);
      expect(onA.events().filter((e) => e.resource_id === team.body.id)).toHaveLength(1);
    } finally {
      apiA.close();
    }

    // And the other way round, for a job enqueued through replica B's queue.
    const [job] = await b.kernel.jobs.enqueue({ type: 'Validation', payload: {} });
    await onA.waitFor((m) => m.event?.resource_id === job.id && m.event.action === 'job_created');

    // A burst is batched into few NOTIFYs and still arrives complete and in order.
    const burst = Array.from({ length: 500 }, (_, i) => ({
      category: 'lifecycle' as const, actor: 'system', actor_type: 'system', action: 'team_updated', resource_type: 'team', resource_id: `team-burst-${i}`,
    }));
    await a.kernel.audit.append(burst);
    await onB.waitFor((m) => m.event?.resource_id === 'team-burst-499');
    const seen = onB.events().filter((e) => e.resource_id.startsWith('team-burst-')).map((e) => e.resource_id);
    expect(seen).toEqual(burst.map((r) => r.resource_id));
  });
});
