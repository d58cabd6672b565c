import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExpiryCheck } from '../../kernel/src/lifecycle/expiry-check.js';
import { ariCertId } from '../../plugins/issuers/acme/dist/der.js';
import { startPebble, type Pebble } from '../../plugins/issuers/acme/dist/pebble-harness.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { completeWithAgent } from './renewal-support.js';

const HOUR = 3_600_000;

/**
 * ARI with the real ACME issuer plugin: Pebble (Debian) behind the ARI shim that
 * answers RFC 9773 renewalInfo (its window at two thirds of the lifetime, Retry-After
 * 6 h, or a window a test forces). The kernel's loop asks, keeps the pick, and renews
 * when the CA moves the window into the past; the renewal order names what it replaces.
 * One database is enough here (renewal-ari.test.ts runs the loop's SQL on both); Pebble is slow.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('ARI renewal timing with the ACME issuer and Pebble', () => {
  let t: TestKernel;
  let knex: Knex;
  let pebble: Pebble;

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_JOB_BACKOFF: '10ms' } });
    knex = t.kernel.db.knex;
    pebble = await startPebble({
      keyAuthorization: async (token) => {
        const res = await t.api.withKey(null).get(`/.well-known/acme-challenge/${token}`);
        return res.status === 200 ? res.text : undefined;
      },
    });
    const created = await t.api.post('/api/v1/issuers', { id: 'iss-acme', name: 'Pebble', type: 'acme', config: { directory_url: pebble.ariDirectoryUrl, email: 'pki@certctl.test', ca_certificates_pem: pebble.tlsCaPem } });
    expect(created.status, created.text).toBe(201);
    await knex('agents').insert({ id: 'agent-ari', name: 'ari' });
  });
  afterAll(async () => {
    await pebble?.stop();
    await t?.stop();
  });

  it('follows the CA\'s window: waits inside it, asks again after Retry-After, renews when the CA says now', async () => {
    const created = await t.api.post('/api/v1/certificates', { name: 'ari', common_name: 'ari.certctl.test', issuer_id: 'iss-acme', agent_id: 'agent-ari' });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const first = (await knex('jobs').where({ certificate_id: id }).first()) as { id: string };
    expect(await completeWithAgent(t, first.id)).toMatchObject({ status: 'Completed' });
    const [v1] = await knex('certificate_versions').where({ certificate_id: id });

    const now = Date.now();
    await runExpiryCheck(t.kernel, { now: new Date(now) });
    expect(pebble.ari.lookups).toEqual([ariCertId(v1.pem_chain)]);
    expect(await knex('jobs').where({ certificate_id: id, type: 'Renewal' })).toEqual([]);
    const info = (await t.api.get(`/api/v1/certificates/${id}`)).body.renewal_info;
    // The shim's window: from two thirds of the lifetime, a sixth of it long; Retry-After 21600 s.
    const from = new Date(v1.not_before).getTime();
    const life = new Date(v1.not_after).getTime() - from;
    expect(Date.parse(info.suggested_window.start)).toBeCloseTo(from + (life * 2) / 3, -4);
    expect(Date.parse(info.selected_at)).toBeGreaterThanOrEqual(Date.parse(info.suggested_window.start));
    expect(Date.parse(info.selected_at)).toBeLessThan(Date.parse(info.suggested_window.end));
    expect(info).toMatchObject({ next_check_at: new Date(now + 6 * HOUR).toISOString(), explanation_url: `${pebble.ari.origin}/why`, last_error: null });

    // Not asked again before Retry-After; then the CA says "renew now".
    await runExpiryCheck(t.kernel, { now: new Date(now + HOUR) });
    expect(pebble.ari.lookups).toHaveLength(1);
    pebble.ari.window = { start: new Date(now - 2 * HOUR).toISOString(), end: new Date(now - HOUR).toISOString() };
    await runExpiryCheck(t.kernel, { now: new Date(now + 6 * HOUR) });
    expect(pebble.ari.lookups).toHaveLength(2);
    const [renewal] = await knex('jobs').where({ certificate_id: id, type: 'Renewal' });
    expect(renewal).toMatchObject({ status: 'AwaitingCSR', payload: { trigger: 'ari' } });

    expect(await completeWithAgent(t, renewal.id)).toMatchObject({ status: 'Completed' });
    expect(pebble.ari.orders.at(-1)).toMatchObject({ replaces: ariCertId(v1.pem_chain) });
    expect((await knex('managed_certificates').where({ id }).first()).status).toBe('Active');
  });
});
