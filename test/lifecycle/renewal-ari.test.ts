import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExpiryCheck } from '../../kernel/src/lifecycle/expiry-check.js';
import type { JobRow } from '../../kernel/src/jobs/job-states.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { certRow, createCertificate, issuanceEnv, seedIssuance, TEST_ISSUER_DIR, versionsOf } from './issuance-support.js';
import { completeWithAgent } from './renewal-support.js';

/** An issuer whose renewalInfo answers from its instance config (window, none, throw). */
const ARI_ISSUER_DIR = fileURLToPath(new URL('../fixtures/plugins-runtime/test-ari-issuer/', import.meta.url));
const SEC = 1000;
const DAY = 86_400_000;

/**
 * ACME Renewal Information (RFC 9773): the expiry loop asks ARI-capable issuers for
 * their renewal window (no transaction held across the call), picks a time in it,
 * and renews then, even before the policy's threshold; a failed fetch falls back to
 * the threshold. The fixture issuer runs in a worker; the clock is injected.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('renewal timing from the issuer (ARI)', () => {
  let t: TestKernel;
  let knex: Knex;
  const T = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString();

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv({ CERTCTL_PLUGIN_DIRS: `${TEST_ISSUER_DIR},${ARI_ISSUER_DIR}` }) });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
  });
  afterAll(async () => { await t?.stop(); });

  let n = 0;
  /** An issuer instance of the ARI fixture with this config, and a certificate issued by it (90 days). */
  async function issuedBy(config: Record<string, unknown>, type = 'test-ari-issuer'): Promise<{ id: string; issuerId: string }> {
    const issuerId = `iss-ari-${++n}`;
    await knex('issuers').insert({ id: issuerId, name: `ARI CA ${n}`, type, config: JSON.stringify(config) });
    const { id, job } = await createCertificate(t, { issuer_id: issuerId, agent_id: 'agent-1' });
    expect(await completeWithAgent(t, job.id)).toMatchObject({ status: 'Completed' });
    return { id, issuerId };
  }
  const setConfig = (issuerId: string, config: Record<string, unknown>) => knex('issuers').where({ id: issuerId }).update({ config: JSON.stringify(config) });
  const renewals = (id: string) => knex('jobs').where({ certificate_id: id, type: 'Renewal' }).orderBy('created_at') as Promise<JobRow[]>;
  const check = (at: number) => runExpiryCheck(t.kernel, { now: new Date(at) });
  const infoOf = async (id: string) => {
    const res = await t.api.get(`/api/v1/certificates/${id}`);
    expect(res.status, res.text).toBe(200);
    return res.body.renewal_info as null | { suggested_window: { start: string; end: string } | null; selected_at: string | null; next_check_at: string; checked_at: string; last_error: string | null; explanation_url: string | null };
  };
  /** How often the fixture was asked for the renewal info of the certificate's current version. */
  const callsFor = async (id: string) => {
    const [version] = (await versionsOf(knex, id)).slice(-1);
    const serial = new crypto.X509Certificate(version.pem_chain).serialNumber.toLowerCase();
    const row = (await knex('plugin_kv').where({ plugin_id: 'test-ari-issuer', key: `renewal-info:${serial}` }).first('value')) as { value: unknown } | undefined;
    return Number(row?.value ?? 0);
  };

  it('renews inside a past window at once, long before the threshold; a plain issuer is not asked', async () => {
    const window = { window_start: iso(T - 2 * DAY), window_end: iso(T - DAY) };
    const { id, issuerId } = await issuedBy(window);
    const plain = await createCertificate(t, { issuer_id: 'iss-issue', agent_id: 'agent-1' });
    await completeWithAgent(t, plain.job.id);

    const r = await check(T);
    expect(r.renewalJobs).toBe(1);
    const [job] = await renewals(id);
    expect(job).toMatchObject({ status: 'AwaitingCSR', payload: { trigger: 'ari' } });
    expect((await certRow(knex, id)).status).toBe('RenewalInProgress');
    const requested = await knex('audit_events').where({ resource_id: id, action: 'certificate_renewal_requested' }).first();
    expect(requested.details).toMatchObject({ from: 'Active', to: 'RenewalInProgress', trigger: 'ari' });
    expect(await callsFor(id)).toBe(1);

    const info = await infoOf(id);
    expect(info).toMatchObject({ suggested_window: { start: window.window_start, end: window.window_end }, last_error: null, explanation_url: 'https://ca.example.test/why', next_check_at: iso(T + 6 * 3600 * SEC) });
    expect(Date.parse(info!.selected_at!)).toBeGreaterThanOrEqual(T - 2 * DAY);
    expect(Date.parse(info!.selected_at!)).toBeLessThan(T - DAY);
    // The test CA issuer has no renewalInfo: no window, no early renewal.
    expect(await infoOf(plain.id)).toBeNull();
    expect(await renewals(plain.id)).toEqual([]);
    expect(await knex('certificate_renewal_info').where({ certificate_id: plain.id })).toEqual([]);

    // The renewed version gets its own window; the old one no longer applies.
    await setConfig(issuerId, { window_start: iso(T + 50 * DAY), window_end: iso(T + 51 * DAY) });
    expect(await completeWithAgent(t, job.id)).toMatchObject({ status: 'Completed' });
    expect(await infoOf(id)).toBeNull();
    expect(await check(T)).toMatchObject({ renewalJobs: 0 });
    expect(await callsFor(id)).toBe(1);
    expect((await infoOf(id))!.suggested_window).toEqual({ start: iso(T + 50 * DAY), end: iso(T + 51 * DAY) });
  });

  it('waits for a future window, asks again only after Retry-After, keeps its pick, re-picks a moved window, and renews at the pick', async () => {
    const first = { window_start: iso(T + 10 * DAY), window_end: iso(T + 11 * DAY), retry_after_seconds: 7200 };
    const { id, issuerId } = await issuedBy(first);
    await check(T);
    expect(await renewals(id)).toEqual([]);
    const info = await infoOf(id);
    expect(info).toMatchObject({ suggested_window: { start: first.window_start, end: first.window_end }, next_check_at: iso(T + 7200 * SEC), checked_at: iso(T) });
    const picked = Date.parse(info!.selected_at!);
    expect(picked).toBeGreaterThanOrEqual(T + 10 * DAY);
    expect(picked).toBeLessThan(T + 11 * DAY);
    expect(await callsFor(id)).toBe(1);

    // Retry-After (2 h) is respected: not asked at 1 h, asked at 2 h, same window, same pick.
    await check(T + 3600 * SEC);
    expect(await callsFor(id)).toBe(1);
    await check(T + 7200 * SEC);
    expect(await callsFor(id)).toBe(2);
    expect(await infoOf(id)).toMatchObject({ selected_at: iso(picked), next_check_at: iso(T + 14_400 * SEC) });

    // The CA moves the window: a new pick inside the new one.
    const moved = { window_start: iso(T + 20 * DAY), window_end: iso(T + 21 * DAY), retry_after_seconds: 7200 };
    await setConfig(issuerId, moved);
    await check(T + 14_400 * SEC);
    const again = await infoOf(id);
    expect(again!.suggested_window).toEqual({ start: moved.window_start, end: moved.window_end });
    const repicked = Date.parse(again!.selected_at!);
    expect(repicked).toBeGreaterThanOrEqual(T + 20 * DAY);
    expect(repicked).toBeLessThan(T + 21 * DAY);

    // Nothing before the pick; at the pick, a Renewal (the threshold rule would wait until day 60).
    await check(repicked - SEC);
    expect(await renewals(id)).toEqual([]);
    await check(repicked);
    expect(await renewals(id)).toMatchObject([{ status: 'AwaitingCSR', payload: { trigger: 'ari' } }]);
  });

  it('holds the threshold rule back until a later pick that is still before expiry', async () => {
    const { id } = await issuedBy({ window_start: iso(T + 70 * DAY), window_end: iso(T + 71 * DAY) });
    await check(T + 65 * DAY);
    expect((await certRow(knex, id)).status).toBe('Expiring');
    expect(await renewals(id)).toEqual([]);
    await check(T + 71 * DAY);
    expect(await renewals(id)).toMatchObject([{ payload: { trigger: 'ari' } }]);
  });

  it('falls back to the threshold rule when renewalInfo fails or has no window, and asks again later', async () => {
    const failing = await issuedBy({ renewal_info: 'throw' });
    const none = await issuedBy({ renewal_info: 'none' });
    await check(T);
    expect(await renewals(failing.id)).toEqual([]);
    expect(await renewals(none.id)).toEqual([]);
    const info = await infoOf(failing.id);
    expect(info).toMatchObject({ suggested_window: null, selected_at: null, next_check_at: iso(T + 3600 * SEC) });
    expect(info!.last_error).toContain('the test CA renewal info endpoint is down');
    expect(await infoOf(none.id)).toMatchObject({ suggested_window: null, selected_at: null, last_error: null, next_check_at: iso(T + 6 * 3600 * SEC) });
    expect(await callsFor(failing.id)).toBe(1);
    await check(T + 1800 * SEC);
    expect(await callsFor(failing.id)).toBe(1);
    await check(T + 3600 * SEC);
    expect(await callsFor(failing.id)).toBe(2);

    // Inside the policy's renewal window (30 days before expiry) the threshold rule renews both.
    await check(T + 61 * DAY);
    for (const c of [failing, none]) {
      expect(await renewals(c.id)).toMatchObject([{ status: 'AwaitingCSR', payload: { trigger: 'expiry' } }]);
    }
  });
});
