import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import { KernelCapabilityBroker } from '../../kernel/src/plugins/broker/capability-broker.js';
import { PluginCallError, type BrokerCallContext } from '../../kernel/src/plugins/host/contracts.js';
import { ProtocolIssuanceOps } from '../../kernel/src/protocols/index.js';
import { makeCsr, opensslVerifies, scratch } from '../ca/ca-support.js';
import { runJob } from '../lifecycle/issuance-support.js';
import { capturingLogger } from '../plugins/support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/*
 * ctx.issuance on the kernel side, through the real broker: who may use it, what
 * enrol / re-enrol / collect / revoke / caChain do to the inventory, and that
 * every refusal is an answer (denied / failed), never a half-written certificate.
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('ctx.issuance (protocol plugins -> issuance service)', () => {
  let t: TestKernel;
  let knex: Knex;
  let broker: KernelCapabilityBroker;
  const tmp = scratch();
  const ctxFor = (pluginId: string, grants: object = { issuance: true }): BrokerCallContext => ({ pluginId, instanceId: null, grants, deadline: Date.now() + 30_000 });
  const call = (op: 'issuance.enroll' | 'issuance.revoke' | 'issuance.caChain' | 'issuance.checkHttp01' | 'issuance.checkDns01' | 'issuance.checkTlsAlpn01', request: object, ctx = ctxFor('est')) =>
    broker.handle(ctx, { op, request: request as Json }) as Promise<Record<string, any>>;
  const enrollReq = (csrPem: string, extra: object = {}) => ({ profileId: null, issuerId: 'iss-pi', csrPem, requester: { kind: 'est-basic', id: 'tester' }, ...extra });
  const count = async (table: string, where: object = {}) => Number(((await knex(table).where(where).count({ n: '*' }).first()) as { n: string }).n);

  beforeAll(async () => {
    t = await startTestKernel();
    knex = t.kernel.db.knex;
    expect((await t.api.post('/api/v1/issuers', { id: 'iss-pi', name: 'PI CA', type: 'local-ca', config: {} })).status).toBe(201);
    await knex('certificate_profiles').insert([
      { id: 'prof-pi-gated', name: 'PI gated', requires_approval: true },
      { id: 'prof-pi-off', name: 'PI off', enabled: false },
      { id: 'prof-pi-rsa', name: 'PI RSA only', allowed_key_algorithms: JSON.stringify([{ algorithm: 'RSA', min_size: 2048 }]) },
    ]);
    broker = new KernelCapabilityBroker({ knex, cipher: t.kernel.cipher, audit: t.kernel.audit, log: capturingLogger().log, issuance: new ProtocolIssuanceOps(() => t.kernel) });
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  it('is refused without the grant, and to plugins that are not protocols', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'nope.pi.test' });
    for (const ctx of [ctxFor('est', {}), ctxFor('local-ca')]) {
      const err = await call('issuance.enroll', enrollReq(csr), ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PluginCallError);
      expect((err as PluginCallError).code).toBe('capability_denied');
    }
    expect(await count('managed_certificates')).toBe(0);
  });

  it('refuses bad requests, unknown or disabled issuers and profiles, and invalid CSRs as denied, writing nothing', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'bad.pi.test' });
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
    der[der.length - 3] ^= 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const cases: [object, RegExp][] = [
      [{ ...enrollReq(csr), requester: { kind: 'Bad Kind', id: 'x' } }, /requester\.kind/],
      [{ ...enrollReq(csr), csrPem: 'not a csr' }, /csrPem/],
      [enrollReq(csr, { issuerId: 'iss-missing' }), /issuer iss-missing does not exist/],
      [enrollReq(csr, { profileId: 'prof-missing' }), /profile prof-missing does not exist/],
      [enrollReq(csr, { profileId: 'prof-pi-off' }), /profile prof-pi-off is disabled/],
      [enrollReq(tampered), /CSR is not valid/],
    ];
    for (const [request, reason] of cases) {
      const r = await call('issuance.enroll', request);
      expect(r.status, JSON.stringify(request).slice(0, 80)).toBe('denied');
      expect(r.reason).toMatch(reason);
    }
    expect(await count('managed_certificates')).toBe(0);
  });

  it('enrols: a managed certificate tagged with the protocol, issued, stored and audited with the protocol as actor', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'one.pi.test', sans: ['one.pi.test'] });
    const r = await call('issuance.enroll', enrollReq(csr));
    expect(r).toMatchObject({ status: 'issued', certificateId: expect.stringMatching(/^mc-/) });
    expect(new Date(r.notAfter).toISOString()).toBe(r.notAfter);
    const x509 = new crypto.X509Certificate(r.certificatePem);
    expect(x509.subject).toContain('CN=one.pi.test');
    expect(opensslVerifies(tmp.dir, r.chainPem[0], r.certificatePem).ok).toBe(true);
    const row = (await knex('managed_certificates').where({ id: r.certificateId }).first()) as Record<string, any>;
    expect(row).toMatchObject({ status: 'Active', issuer_id: 'iss-pi', common_name: 'one.pi.test', name: 'est: one.pi.test' });
    expect(row.tags).toEqual({ protocol: 'est', requester: 'est-basic:tester' });
    // The client renews it: the kernel's expiry loop must not (alerts still apply).
    expect(row.renewal_policy_id).toBe('rp-client-renewed');
    expect(await knex('renewal_policies').where({ id: 'rp-client-renewed' }).first('auto_renew')).toEqual({ auto_renew: false });
    expect(row.serial_number).toBe(r.serialNumber);
    const actions = (await knex('audit_events').where({ resource_id: r.certificateId }).select('action', 'actor', 'actor_type')) as { action: string; actor: string; actor_type: string }[];
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['certificate_created']));
    expect(actions.every((a) => a.actor === 'est/est-basic:tester' && a.actor_type === 'protocol')).toBe(true);

    // A new CSR renews it; so does the same CSR again (a client keeping its key and request).
    const renewed = await call('issuance.enroll', enrollReq(makeCsr(tmp.dir, { cn: 'one.pi.test', sans: ['one.pi.test'] }), { certificateId: r.certificateId }));
    expect(renewed).toMatchObject({ status: 'issued', certificateId: r.certificateId });
    expect(renewed.serialNumber).not.toBe(r.serialNumber);
    const same = await call('issuance.enroll', enrollReq(csr, { certificateId: r.certificateId }));
    expect(same).toMatchObject({ status: 'issued', certificateId: r.certificateId });
    expect(new Set([r.serialNumber, renewed.serialNumber, same.serialNumber]).size).toBe(3);
    expect(await count('certificate_versions', { certificate_id: r.certificateId })).toBe(3);
  });

  it('a CSR the profile refuses: denied with the reason, no managed certificate left, the refusal audited', async () => {
    const r = await call('issuance.enroll', enrollReq(makeCsr(tmp.dir, { cn: 'ec.pi.test' }), { profileId: 'prof-pi-rsa' }));
    expect(r.status).toBe('denied');
    expect(r.reason).toMatch(/rules for certificate/);
    expect(await knex('managed_certificates').where({ common_name: 'ec.pi.test' })).toEqual([]);
    const audit = (await knex('audit_events').where({ action: 'certificate_enrolment_refused' }).whereRaw("details->>'reason' like '%rules for certificate%'").first('actor_type')) as { actor_type: string } | undefined;
    expect(audit?.actor_type).toBe('protocol');
  });

  it('will not touch certificates the plugin did not enrol', async () => {
    const created = await t.api.post('/api/v1/certificates', { name: 'manual', common_name: 'manual.pi.test', issuer_id: 'iss-pi' });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id ?? created.body.certificate?.id;
    expect((await call('issuance.enroll', enrollReq(makeCsr(tmp.dir, { cn: 'manual.pi.test' }), { certificateId: id }))).status).toBe('denied');
    expect(await call('issuance.revoke', { certificateId: id })).toMatchObject({ status: 'failed', reason: expect.stringMatching(/not enrolled through est/) });
  });

  it('revokes an enrolled certificate (revocation record, Revoked), and refuses to renew it afterwards', async () => {
    const r = await call('issuance.enroll', enrollReq(makeCsr(tmp.dir, { cn: 'gone.pi.test' })));
    expect(r.status).toBe('issued');
    expect(await call('issuance.revoke', { certificateId: r.certificateId, reason: 'keyCompromise' })).toEqual({ status: 'revoked' });
    expect((await knex('managed_certificates').where({ id: r.certificateId }).first('status')).status).toBe('Revoked');
    expect(await knex('certificate_revocations').where({ certificate_id: r.certificateId }).first('reason', 'revoked_by')).toEqual({ reason: 'keyCompromise', revoked_by: 'est/est-basic:tester' });
    expect(await call('issuance.revoke', { certificateId: r.certificateId })).toMatchObject({ status: 'failed', reason: expect.stringMatching(/already revoked/) });
    expect(await call('issuance.revoke', { certificateId: r.certificateId, reason: 'becauseISaidSo' })).toMatchObject({ status: 'failed', reason: expect.stringMatching(/reason must be one of/) });
    const renew = await call('issuance.enroll', enrollReq(makeCsr(tmp.dir, { cn: 'gone.pi.test' }), { certificateId: r.certificateId }));
    expect(renew).toMatchObject({ status: 'denied', reason: expect.stringMatching(/Revoked/) });
  });

  it('approval: pending with the approval id; a rejected request then reads as denied', async () => {
    const csr = makeCsr(tmp.dir, { cn: 'held.pi.test' });
    const r = await call('issuance.enroll', enrollReq(csr, { profileId: 'prof-pi-gated' }));
    expect(r).toMatchObject({ status: 'pending', retryAfterSeconds: 60, approvalId: expect.stringMatching(/^apr-/) });
    expect(await call('issuance.enroll', enrollReq(csr, { profileId: 'prof-pi-gated', certificateId: r.certificateId }))).toMatchObject({ status: 'pending', approvalId: r.approvalId });
    const job = (await knex('approval_requests').where({ id: r.approvalId }).first('job_id')) as { job_id: string };
    expect((await t.api.post(`/api/v1/jobs/${job.job_id}/reject`, { reason: 'unknown device' })).status).toBe(200);
    // (Approved, the same request would collect the job's certificate: test/protocols/est.test.ts.)
    expect(await runJob(t, job.job_id)).toMatchObject({ status: 'Cancelled' });
    expect(await call('issuance.enroll', enrollReq(csr, { certificateId: r.certificateId }))).toMatchObject({ status: 'denied' });
    expect(await count('certificate_versions', { certificate_id: r.certificateId })).toBe(0);
  });

  it('caChain: the issuer chain; an unknown issuer is an error', async () => {
    const r = await call('issuance.caChain', { issuerId: 'iss-pi' });
    expect(r.chainPem).toHaveLength(1);
    expect(new crypto.X509Certificate(r.chainPem[0]).subject).toContain('certctl Local CA');
    await expect(call('issuance.caChain', { issuerId: 'iss-missing' })).rejects.toThrow(/does not exist/);
  });
  it('checkHttp01: refuses malformed requests and never contacts metadata or unspecified addresses', async () => {
    const token = 'A'.repeat(43);
    const ask = (request: object) => call('issuance.checkHttp01', { token, keyAuthorization: `${token}.thumb`, ...request });
    expect(await ask({ host: '169.254.169.254' })).toEqual({ ok: false, reason: expect.stringMatching(/metadata address/), error: 'connection' });
    expect(await ask({ host: '0.0.0.0', port: 8080 })).toEqual({ ok: false, reason: expect.stringMatching(/unspecified/), error: 'connection' });
    expect(await ask({ host: 'no-such-name.invalid' })).toEqual({ ok: false, reason: expect.stringMatching(/DNS problem/), error: 'dns' });
    for (const bad of [{ host: '127.0.0.1', port: 22 }, { host: 'bad host!' }, { host: '127.0.0.1', keyAuthorization: 'other.thumb' }, { host: 'a.test', dnsResolvers: ['169.254.169.254'] }, { host: 'a.test', dnsResolvers: ['not-an-ip'] }]) {
      const err = await ask(bad).catch((e: unknown) => e);
      expect((err as PluginCallError).code, JSON.stringify(bad)).toBe('capability_denied');
    }
  });
  it('checkDns01 and checkTlsAlpn01: refuse malformed requests, never query or contact metadata or unspecified addresses', async () => {
    const keyAuthorization = `${'A'.repeat(43)}.${'B'.repeat(43)}`;
    expect(await call('issuance.checkTlsAlpn01', { host: '169.254.169.254', keyAuthorization })).toEqual({ ok: false, reason: expect.stringMatching(/metadata address/), error: 'connection' });
    expect(await call('issuance.checkTlsAlpn01', { host: '0.0.0.0', port: 8443, keyAuthorization })).toEqual({ ok: false, reason: expect.stringMatching(/unspecified/), error: 'connection' });
    const refused = [
      ['issuance.checkDns01', { name: '*.a.test', keyAuthorization }], ['issuance.checkDns01', { name: 'a.test', keyAuthorization: 'no-dot' }],
      ['issuance.checkDns01', { name: 'a.test', keyAuthorization, dnsResolvers: ['0.0.0.0:53'] }], ['issuance.checkDns01', { name: 'a.test', keyAuthorization, dnsResolvers: ['[fd00:ec2::254]:53'] }],
      ['issuance.checkTlsAlpn01', { host: 'a.test', port: 22, keyAuthorization }], ['issuance.checkTlsAlpn01', { host: 'a.test', keyAuthorization, dnsResolvers: [] }],
    ] as const;
    for (const [op, request] of refused) {
      const err = await call(op, request).catch((e: unknown) => e);
      expect((err as PluginCallError).code, JSON.stringify(request)).toBe('capability_denied');
    }
  });
});
