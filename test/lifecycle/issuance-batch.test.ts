import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../../kernel/src/audit/audit-log.js';
import { IssuanceError } from '../../kernel/src/lifecycle/issuance-failure.js';
import { IssuanceStoreQueue, MAX_BATCH } from '../../kernel/src/lifecycle/issuance-batch.js';
import { issueCertificate } from '../../kernel/src/lifecycle/issuance-service.js';
import { makeTestPki, type TestPki } from '../plugins/runtime/test-pki.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { issuanceEnv, issuedRecord, seedIssuance, versionsOf } from './issuance-support.js';

/**
 * Group commit of issued certificates (issuance-batch.ts): records stored
 * together keep every per-record guarantee — a job lease lost or a record
 * that cannot be stored fails alone, nothing is lost or stored twice, each
 * certificate has its audit event, and the audit chain stays intact.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('issuance group commit', () => {
  let t: TestKernel;
  let knex: Knex;
  let pki: TestPki;
  let n = 0;

  beforeAll(async () => {
    t = await startTestKernel({ env: issuanceEnv() });
    knex = t.kernel.db.knex;
    await seedIssuance(knex);
    pki = makeTestPki();
  });
  afterAll(async () => {
    pki?.cleanup();
    await t?.stop();
  });

  async function certificates(count: number): Promise<string[]> {
    const ids = Array.from({ length: count }, () => `mc-batch-${process.pid}-${++n}`);
    await knex('managed_certificates').insert(ids.map((id) => ({ id, name: id, common_name: 'batch.example.com', sans: JSON.stringify(['batch.example.com']), status: 'Pending', issuer_id: 'iss-issue' })));
    return ids;
  }

  const record = (certificateId: string, jobId: string | null = null) => issuedRecord(certificateId, 'batch.example.com', jobId);

  const issuedEvents = (ids: string[]) => knex('audit_events').whereIn('resource_id', ids).where({ action: 'certificate_issued' }).select('resource_id', 'details');

  it('stores records queued while a store commits together: one transaction, each with its version and audit event', async () => {
    const queue = new IssuanceStoreQueue(t.kernel);
    const ids = await certificates(6);
    // The first store starts at once; the five queued meanwhile go in one batch.
    const stored = await Promise.all(ids.map((id) => queue.store(record(id), SYSTEM_ACTOR)));
    expect(stored.map((s) => s.certificateId)).toEqual(ids);
    const versions = await knex('certificate_versions').whereIn('certificate_id', ids).select('id', 'certificate_id', 'created_at');
    expect(versions).toHaveLength(6);
    expect(new Set(versions.map((v) => v.id))).toEqual(new Set(stored.map((s) => s.versionId)));
    // One batch shares its store time: the five later versions carry one created_at.
    const later = versions.filter((v) => v.certificate_id !== ids[0]).map((v) => new Date(v.created_at).getTime());
    expect(new Set(later).size).toBe(1);
    const events = await issuedEvents(ids);
    expect(events.map((e) => e.resource_id).sort()).toEqual([...ids].sort());
    for (const id of ids) expect((await knex('managed_certificates').where({ id }).first()).status).toBe('Active');
    expect((await t.kernel.audit.verify()).valid).toBe(true);
  });

  it('routes each stored certificate\'s notifications by its owner and renewal policy, with the notifiers enabled at that store', async () => {
    const tag = `${process.pid}-${++n}`;
    await knex('owners').insert({ id: `owner-${tag}`, name: 'Batch owner', email: 'batch-owner@example.com' });
    await knex('renewal_policies').insert({ id: `rp-${tag}`, name: `batch policy ${tag}` });
    const everyone = `ntf-all-${tag}`;
    const byPolicy = `ntf-policy-${tag}`;
    await knex('notifiers').insert([
      { id: everyone, name: `all ${tag}`, type: 'webhook', event_types: JSON.stringify(['RenewalSuccess']) },
      { id: byPolicy, name: `policy ${tag}`, type: 'webhook', renewal_policy_ids: JSON.stringify([`rp-${tag}`]), recipients: JSON.stringify(['pki@example.com']) },
      { id: `ntf-off-${tag}`, name: `off ${tag}`, type: 'webhook', enabled: false },
    ]);
    try {
      const [owned, plain, later] = await certificates(3);
      await knex('managed_certificates').where({ id: owned }).update({ owner_id: `owner-${tag}`, renewal_policy_id: `rp-${tag}` });
      const queue = new IssuanceStoreQueue(t.kernel);
      await Promise.all([owned, plain].map((id) => queue.store(record(id), SYSTEM_ACTOR)));
      const routed = async (id: string) => (await knex('notifications').where({ certificate_id: id, type: 'RenewalSuccess' }).select('notifier_id', 'recipient'))
        .map((r) => [r.notifier_id, r.recipient]).sort();
      expect(await routed(owned)).toEqual([[everyone, 'batch-owner@example.com'], [byPolicy, 'pki@example.com']]);
      expect(await routed(plain)).toEqual([[everyone, '']]);
      // A notifier disabled now is not used by the next store.
      await knex('notifiers').where({ id: everyone }).update({ enabled: false });
      await queue.store(record(later), SYSTEM_ACTOR);
      expect((await routed(later)).map(([notifier]) => notifier)).toEqual([null]);
    } finally {
      await knex('notifiers').where('id', 'like', `%-${tag}`).update({ enabled: false });
    }
  });

  it('a store waits a moment for issuances still under way, which then share its batch; one that fails does not hold it up', async () => {
    const queue = new IssuanceStoreQueue(t.kernel, MAX_BATCH, 5_000);
    const ids = await certificates(2);
    const [a, b, failing] = [queue.expect(), queue.expect(), queue.expect()];
    const first = queue.store(record(ids[0]), SYSTEM_ACTOR);
    a();
    await new Promise((r) => setTimeout(r, 50));
    const second = queue.store(record(ids[1]), SYSTEM_ACTOR);
    b();
    const released = Date.now();
    // The third issuance fails before storing: the store goes ahead at once rather than after 5 s.
    failing();
    await Promise.all([first, second]);
    expect(Date.now() - released).toBeLessThan(2_500);
    const versions = await knex('certificate_versions').whereIn('certificate_id', ids).select('created_at');
    expect(new Set(versions.map((v) => new Date(v.created_at).getTime())).size).toBe(1);
  });

  it('a record whose job lease was lost is rejected alone; the others in its batch are stored', async () => {
    const queue = new IssuanceStoreQueue(t.kernel);
    const ids = await certificates(5);
    const jobIds = ids.map((id) => `job-${id}`);
    await knex('jobs').insert(ids.map((id, i) => ({
      id: jobIds[i], type: 'Issuance', status: 'Running', certificate_id: id, attempts: 1,
      // 1: this replica claimed the job again since (a stale attempt); 3: another replica took it over.
      lease_owner: i === 3 ? 'someone-else' : 'replica-a',
    })));
    await knex('jobs').where({ id: jobIds[1] }).update({ attempts: 2 });
    const outcomes = await Promise.allSettled(ids.map((id, i) => queue.store(record(id, jobIds[i]), SYSTEM_ACTOR, { jobId: jobIds[i], owner: 'replica-a', attempts: 1 })));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    for (const i of [1, 3]) {
      const reason = (outcomes[i] as PromiseRejectedResult).reason as IssuanceError;
      expect(reason).toBeInstanceOf(IssuanceError);
      expect(reason.message).toBe(`job ${jobIds[i]} is no longer held by this replica; not storing`);
      expect(await versionsOf(knex, ids[i])).toHaveLength(0);
      expect((await knex('managed_certificates').where({ id: ids[i] }).first()).status).toBe('Pending');
    }
    expect((await issuedEvents(ids)).map((e) => e.resource_id).sort()).toEqual([ids[0], ids[2], ids[4]].sort());
    for (const i of [0, 2, 4]) expect(await versionsOf(knex, ids[i])).toHaveLength(1);
    expect((await t.kernel.audit.verify()).valid).toBe(true);
    // The whole lease must match: two records naming one job with different attempts get one answer each.
    const [first, stale, current] = await certificates(3);
    await knex('jobs').insert({ id: `job-${current}`, type: 'Issuance', status: 'Running', certificate_id: current, attempts: 2, lease_owner: 'replica-a' });
    // The first store starts at once; the two queued meanwhile share the next batch.
    const pair = await Promise.allSettled([
      queue.store(record(first), SYSTEM_ACTOR),
      queue.store(record(stale), SYSTEM_ACTOR, { jobId: `job-${current}`, owner: 'replica-a', attempts: 1 }),
      queue.store(record(current), SYSTEM_ACTOR, { jobId: `job-${current}`, owner: 'replica-a', attempts: 2 }),
    ]);
    expect(pair.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    // Alone (the path a failed batch retries by) the same check holds.
    const [single] = await certificates(1);
    await knex('jobs').insert({ id: `job-${single}`, type: 'Issuance', status: 'Completed', certificate_id: single, attempts: 1, lease_owner: 'replica-a' });
    await expect(queue.store(record(single, `job-${single}`), SYSTEM_ACTOR, { jobId: `job-${single}`, owner: 'replica-a', attempts: 1 })).rejects.toThrow(/no longer held/);
    expect(await versionsOf(knex, single)).toHaveLength(0);
  });

  it('a record that cannot be stored (a second version for its job) fails alone: the batch is retried record by record', async () => {
    const queue = new IssuanceStoreQueue(t.kernel);
    const ids = await certificates(5);
    const jobId = `job-batch-${process.pid}-${n}`;
    await queue.store(record(ids[0], jobId), SYSTEM_ACTOR);
    const outcomes = await Promise.allSettled([
      queue.store(record(ids[1]), SYSTEM_ACTOR),
      queue.store(record(ids[2]), SYSTEM_ACTOR),
      queue.store(record(ids[3], jobId), SYSTEM_ACTOR),
      queue.store(record(ids[4]), SYSTEM_ACTOR),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(await knex('certificate_versions').where({ job_id: jobId }).select('certificate_id')).toEqual([{ certificate_id: ids[0] }]);
    for (const id of [ids[1], ids[2], ids[4]]) expect(await versionsOf(knex, id)).toHaveLength(1);
    expect(await versionsOf(knex, ids[3])).toHaveLength(0);
    expect((await issuedEvents(ids)).map((e) => e.resource_id).sort()).toEqual([ids[0], ids[1], ids[2], ids[4]].sort());
    expect((await t.kernel.audit.verify()).valid).toBe(true);
  });

  it('two records for one certificate go to separate batches; the certificate ends at the later version', async () => {
    const queue = new IssuanceStoreQueue(t.kernel);
    const [first, cert] = await certificates(2);
    const a = record(cert);
    const b = record(cert);
    const [, sa, sb] = await Promise.all([queue.store(record(first), SYSTEM_ACTOR), queue.store(a, SYSTEM_ACTOR), queue.store(b, SYSTEM_ACTOR)]);
    expect(sa.versionId).not.toBe(sb.versionId);
    expect(await versionsOf(knex, cert)).toHaveLength(2);
    expect((await knex('managed_certificates').where({ id: cert }).first()).serial_number).toBe(b.leaf.serialNumber);
  });

  it('an issuer\'s changed config applies to the very next issuance (opened configs are reused only while the row is unchanged)', async () => {
    await knex('issuers').insert({ id: 'iss-cache', name: 'Test CA (cache)', type: 'test-ca-issuer', config: JSON.stringify({ behaviour: 'issue' }) });
    await knex('managed_certificates').update({ issuer_id: 'iss-cache' }).whereIn('id', await certificates(3));
    const ids = (await knex('managed_certificates').where({ issuer_id: 'iss-cache' }).orderBy('id').select('id')).map((r) => r.id as string);
    const csr = pki.csr(`cache-${n}`, { subject: '/CN=batch.example.com', sans: 'DNS:batch.example.com' });
    const issue = (certificateId: string) => issueCertificate(t.kernel, { certificateId, type: 'Issuance', csrPem: csr });
    expect((await issue(ids[0])).status).toBe('issued');
    await knex('issuers').where({ id: 'iss-cache' }).update({ config: JSON.stringify({ behaviour: 'deny' }) });
    await expect(issue(ids[1])).rejects.toMatchObject({ kind: 'denied' });
    await knex('issuers').where({ id: 'iss-cache' }).update({ config: JSON.stringify({ behaviour: 'issue' }) });
    expect((await issue(ids[1])).status).toBe('issued');
    // The host reads the row on every call of its own, so a disabled instance is refused at once.
    await knex('issuers').where({ id: 'iss-cache' }).update({ enabled: false });
    await expect(t.kernel.pluginHost.call('test-ca-issuer', 'iss-cache', 'issue', { certificateId: ids[2], csrPem: csr, commonName: 'batch.example.com', sans: [] }))
      .rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('disabled') });
  });

  it('concurrent issuances through the service: every certificate stored once, audited once, chain intact', async () => {
    const ids = await certificates(12);
    const csr = pki.csr(`batch-${n}`, { subject: '/CN=batch.example.com', sans: 'DNS:batch.example.com' });
    const out = await Promise.all(ids.map((certificateId) => issueCertificate(t.kernel, { certificateId, type: 'Issuance', csrPem: csr })));
    expect(out.every((o) => o.status === 'issued')).toBe(true);
    const versions = await knex('certificate_versions').whereIn('certificate_id', ids).select('certificate_id', 'serial_number');
    expect(versions.map((v) => v.certificate_id).sort()).toEqual([...ids].sort());
    const events = await issuedEvents(ids);
    expect(events).toHaveLength(12);
    const serialOf = new Map(versions.map((v) => [v.certificate_id, v.serial_number]));
    for (const e of events) expect((typeof e.details === 'string' ? JSON.parse(e.details) : e.details).serial_number).toBe(serialOf.get(e.resource_id));
    expect((await t.kernel.audit.verify()).valid).toBe(true);
  });

  it('issuances started together read their contexts in one statement, each its own: agent-scoped policies per certificate, a missing certificate refused alone', async () => {
    const tag = `${process.pid}-${++n}`;
    await knex('agent_groups').insert({ id: `ag-${tag}`, name: `batch group ${tag}` });
    await knex('agent_group_members').insert({ agent_group_id: `ag-${tag}`, agent_id: 'agent-2' });
    await knex('policies').insert({ id: `pol-${tag}`, name: `RSA only (${tag})`, type: 'key_algorithm', config: JSON.stringify({ allowed_algorithms: ['RSA'] }), severity: 'Error', agent_group_id: `ag-${tag}` });
    try {
      const [plain, scoped, other] = await certificates(3);
      // Only `scoped` runs on an agent of the group: only it is under the RSA-only policy.
      await knex('managed_certificates').where({ id: scoped }).update({ agent_id: 'agent-2' });
      await knex('managed_certificates').where({ id: other }).update({ agent_id: 'agent-1' });
      const csr = pki.csr(`ctx-${tag}`, { subject: '/CN=batch.example.com', sans: 'DNS:batch.example.com' });
      const reads: string[] = [];
      const onQuery = (q: { sql: string }) => { if (q.sql.includes('json_build_object(\'id\', i.id')) reads.push(q.sql); };
      knex.on('query', onQuery);
      let outcomes;
      try {
        outcomes = await Promise.allSettled([plain, scoped, other, `mc-missing-${tag}`].map((certificateId) => issueCertificate(t.kernel, { certificateId, type: 'Issuance', csrPem: csr })));
      } finally {
        knex.off('query', onQuery);
      }
      expect(reads).toHaveLength(1);
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
      expect(((outcomes[1] as PromiseRejectedResult).reason as Error).message).toContain('blocked by policy');
      expect(((outcomes[3] as PromiseRejectedResult).reason as Error).message).toContain(`certificate mc-missing-${tag} does not exist`);
      expect(await versionsOf(knex, plain)).toHaveLength(1);
      expect(await versionsOf(knex, other)).toHaveLength(1);
      expect(await versionsOf(knex, scoped)).toHaveLength(0);
    } finally {
      await knex('policies').where({ id: `pol-${tag}` }).delete();
    }
  });

  it('profile and policy changes apply to the very next issuance (the context statement is compiled once; its rows are read each time)', async () => {
    const [id1, id2, id3] = await certificates(3);
    await knex('managed_certificates').whereIn('id', [id1, id2, id3]).update({ profile_id: 'prof-ec' });
    const csr = pki.csr(`fresh-${n}`, { subject: '/CN=batch.example.com', sans: 'DNS:batch.example.com' });
    const issue = (certificateId: string) => issueCertificate(t.kernel, { certificateId, type: 'Issuance', csrPem: csr });
    expect((await issue(id1)).status).toBe('issued');
    await knex('certificate_profiles').where({ id: 'prof-ec' }).update({ enabled: false });
    await expect(issue(id2)).rejects.toMatchObject({ message: expect.stringContaining('profile prof-ec is disabled') });
    await knex('certificate_profiles').where({ id: 'prof-ec' }).update({ enabled: true });
    await knex('policies').insert({ id: 'pol-fresh', name: 'RSA only (fresh reads)', type: 'key_algorithm', config: JSON.stringify({ allowed_algorithms: ['RSA'] }), severity: 'Error' });
    try {
      await expect(issue(id2)).rejects.toMatchObject({ message: expect.stringContaining('blocked by policy') });
      await knex('policies').where({ id: 'pol-fresh' }).update({ enabled: false });
      expect((await issue(id3)).status).toBe('issued');
    } finally {
      await knex('policies').where({ id: 'pol-fresh' }).delete();
    }
    expect(await knex('certificate_versions').whereIn('certificate_id', [id1, id2, id3]).pluck('certificate_id')).toEqual(expect.arrayContaining([id1, id3]));
    expect(Number((await knex('certificate_versions').where({ certificate_id: id2 }).count({ n: '*' }).first())?.n)).toBe(0);
  });
});
