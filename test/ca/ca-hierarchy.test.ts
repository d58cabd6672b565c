import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { caHierarchyOf } from '../../kernel/src/ca/ca-routes.js';
import { CaStore } from '../../kernel/src/ca/ca-store.js';
import { revocationOf } from '../../kernel/src/revocation/revocation-services.js';
import { createCertificate, runJob, submitCsr, versionsOf } from '../lifecycle/issuance-support.js';
import { issueManaged, raw, run, write, type Issued } from '../revocation/revocation-support.js';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { issueRequest, makeCsr, scratch, x509Text } from './ca-support.js';

const BASE = 'https://pki.example.test';
const ISSUER = 'iss-h';
const PATH = `/api/v1/issuers/${ISSUER}/intermediates`;
type Ca = { id: string; parent_id: string | null; role: string; status: string; subject: string; certificate_pem: string; path_len_constraint: number | null; name_constraints: any; crl_url: string; drain_until: string | null };

describe.skipIf(POSTGRES_UNAVAILABLE)('CA hierarchy: root -> intermediate -> issuing', () => {
  let t: TestKernel;
  const tmp = scratch();
  const db = () => t.kernel.db.knex;
  let root: Ca;
  let intermediate: Ca;
  let issuing: Ca;
  const ocspUrl = () => `${t.kernel.url.replace('localhost', '127.0.0.1')}/.well-known/pki/ocsp/${ISSUER}`;
  const caCount = async () => Number(((await db()('certificate_authorities').count({ n: '*' }).first()) as { n: string }).n);
  const auditCount = async (action: string) => Number(((await db()('audit_events').where({ action }).count({ n: '*' }).first()) as { n: string }).n);
  const issue = (cn: string, sans: string[] = []) => t.kernel.pluginHost.call('local-ca', ISSUER, 'issue', issueRequest(makeCsr(tmp.dir, { cn }), { commonName: cn, sans }) as never) as unknown as Promise<{ status: string; reason?: string; certificatePem: string; chainPem: string[] }>;
  /** Issues through the API flow (certificate, job, CSR, issuance job). */
  async function issueViaApi(cn: string, sans: string[] = []) {
    const { id, job } = await createCertificate(t, { common_name: cn, sans, agent_id: 'agent-h', issuer_id: ISSUER });
    await submitCsr(db(), job.id, makeCsr(tmp.dir, { cn, sans: [cn, ...sans] }));
    return { id, job: await runJob(t, job.id) };
  }
  async function crlPemOf(caId: string): Promise<string> {
    const res = await raw(t, 'GET', `/.well-known/pki/crl/${ISSUER}/${caId}`);
    expect(res.status).toBe(200);
    return (await run(['crl', '-inform', 'DER', '-in', write(tmp.dir, `crl-${caId}.der`, res.body)])).out;
  }

  beforeAll(async () => {
    t = await startTestKernel({ env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_PUBLIC_BASE_URL: BASE } });
    expect((await t.api.post('/api/v1/issuers', { id: ISSUER, name: ISSUER, type: 'local-ca', config: { subject: 'CN=Hier Root, O=certctl test' } })).status).toBe(201);
    await db()('agents').insert({ id: 'agent-h', name: 'agent-h' });
  });
  afterAll(async () => {
    await t?.stop();
    tmp.cleanup();
  });

  it('refuses bad input with nothing written (also the issuer\'s first CA, made on demand otherwise)', async () => {
    const before = await caCount();
    const created = await auditCount('ca_created');
    const bad: [object, number][] = [
      [{ subject: 'CN=X', colour: 'blue' }, 400],
      [{}, 400],
      [{ subject: 'CN=X', key_algorithm: 'DSA-1024' }, 400],
      [{ subject: 'CN=X', validity_days: 0 }, 400],
      [{ subject: 'CN=X', name_constraints: { permitted: { ip: ['10.0.0.0/99'] } } }, 400],
      [{ subject: 'CN=X', name_constraints: { permitted: { dns: ['not a domain'] } } }, 400],
      [{ subject: 'CN=X', name_constraints: { allowed: {} } }, 400],
      [{ subject: 'no equals sign here' }, 400],
      [{ subject: 'CN=X', parent_id: 'ca-missing' }, 404],
    ];
    for (const [body, status] of bad) {
      const res = await t.api.post(PATH, body);
      expect(res.status, `${JSON.stringify(body)} -> ${res.text}`).toBe(status);
    }
    expect((await t.api.post('/api/v1/issuers/iss-missing/intermediates', { subject: 'CN=X' })).status).toBe(404);
    expect(await caCount()).toBe(before);
    expect(await auditCount('ca_created')).toBe(created);
    expect((await t.api.get(PATH)).body.data).toEqual([]);
  });

  it('is admin-gated: operators and viewers get 403 on changes, viewers may read', async () => {
    const operator = await t.keyWithRole('operator');
    const viewer = await t.keyWithRole('viewer');
    const before = await caCount();
    for (const key of [operator, viewer]) {
      const res = await t.api.request('POST', PATH, { key, body: { subject: 'CN=Not Allowed' } });
      expect(res.status).toBe(403);
      expect(res.body.error.details[0].message).toBe('ca.manage');
    }
    expect(await caCount()).toBe(before);
    const list = await t.api.request('GET', PATH, { key: viewer });
    expect(list.status).toBe(200);
    expect(list.body.data).toEqual([]);
  });

  it('builds root (made on demand) -> intermediate (name constraints, pathlen 1) -> issuing (pathlen 0, activated)', async () => {
    const mid = await t.api.post(PATH, {
      subject: 'CN=Hier Intermediate, O=certctl test', key_algorithm: 'ECDSA-P384', validity_days: 3000, path_len_constraint: 1,
      name_constraints: { permitted: { dns: ['example.test'], ip: ['10.0.0.0/8'], email: ['example.test'] }, excluded: { dns: ['bad.example.test'] } },
    });
    expect(mid.status, mid.text).toBe(201);
    intermediate = mid.body;
    expect(intermediate).toMatchObject({ role: 'intermediate', status: 'standby', path_len_constraint: 1 });
    expect(intermediate.name_constraints.permitted).toEqual({ dns: ['example.test'], ip: ['10.0.0.0/8'], email: ['example.test'] });
    const iss = await t.api.post(PATH, { parent_id: intermediate.id, subject: 'CN=Hier Issuing 1', path_len_constraint: 0, activate: true });
    expect(iss.status, iss.text).toBe(201);
    issuing = iss.body;
    expect(issuing).toMatchObject({ role: 'issuing', status: 'active', parent_id: intermediate.id, path_len_constraint: 0 });

    const tree = await t.api.get(PATH);
    expect(tree.status).toBe(200);
    expect(tree.text).not.toMatch(/PRIVATE KEY|encrypted_key/);
    expect(tree.body.data.map((c: Ca) => c.id)).toEqual([intermediate.parent_id, intermediate.id, issuing.id]);
    root = tree.body.data[0];
    expect(root).toMatchObject({ role: 'root', status: 'standby', parent_id: null });
    expect(intermediate.parent_id).toBe(root.id);
    expect((await t.api.get(`${PATH}/${issuing.id}`)).body).toMatchObject({ id: issuing.id, crl_url: `${BASE}/.well-known/pki/crl/${ISSUER}/${issuing.id}` });
    expect((await t.api.get(`${PATH}/ca-nope`)).status).toBe(404);

    const midText = x509Text(intermediate.certificate_pem);
    expect(midText).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    expect(midText).toMatch(/X509v3 Name Constraints: critical\s+Permitted:\s+DNS:example\.test\s+IP:10\.0\.0\.0\/255\.0\.0\.0\s+email:example\.test\s+Excluded:\s+DNS:bad\.example\.test/);
    expect(midText).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    expect(midText).toContain(`URI:${BASE}/.well-known/pki/crl/${ISSUER}/${root.id}`);
    expect(x509Text(issuing.certificate_pem)).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    const audit = await db()('audit_events').where({ action: 'ca_activated', resource_id: issuing.id }).first();
    expect(audit.details).toMatchObject({ issuer_id: ISSUER, previous_ca_id: root.id });
  });

  it('issues leaves through the API whose full chain openssl verifies, with CRLs of every CA (-crl_check_all)', async () => {
    const { id, job } = await issueViaApi('app.example.test', ['10.1.2.3']);
    expect(job.last_error).toBeNull();
    expect(job.status).toBe('Completed');
    const [version] = await versionsOf(db(), id);
    const [leaf, ...chain] = version.pem_chain.split(/(?<=-----END CERTIFICATE-----\n)/);
    expect(chain.map((p: string) => new crypto.X509Certificate(p).fingerprint256)).toEqual([issuing, intermediate, root].map((c) => new crypto.X509Certificate(c.certificate_pem).fingerprint256));
    const rootFile = write(tmp.dir, 'h-root.pem', root.certificate_pem);
    const untrusted = write(tmp.dir, 'h-untrusted.pem', issuing.certificate_pem + intermediate.certificate_pem);
    const leafFile = write(tmp.dir, 'h-leaf.pem', leaf);
    expect((await run(['verify', '-CAfile', rootFile, '-untrusted', untrusted, leafFile])).out).toContain(': OK');
    expect(x509Text(leaf)).toContain(`URI:${BASE}/.well-known/pki/crl/${ISSUER}/${issuing.id}`);
    const crls = write(tmp.dir, 'h-crls.pem', (await crlPemOf(root.id)) + (await crlPemOf(intermediate.id)) + (await crlPemOf(issuing.id)));
    const checked = await run(['verify', '-crl_check_all', '-CAfile', rootFile, '-untrusted', untrusted, '-CRLfile', crls, leafFile]);
    expect(checked.out).toContain(': OK');
    // The JSON view names each CA's own CRL URL; the issuer's URL only for the issuing CA, whose CRL it serves.
    const view = await t.api.get(`/api/v1/crl?issuer_id=${ISSUER}`);
    expect(Object.fromEntries(view.body.crls.map((c: { ca_id: string; url: string }) => [c.ca_id, c.url]))).toEqual({
      [root.id]: `${BASE}/.well-known/pki/crl/${ISSUER}/${root.id}`,
      [intermediate.id]: `${BASE}/.well-known/pki/crl/${ISSUER}/${intermediate.id}`,
      [issuing.id]: `${BASE}/.well-known/pki/crl/${ISSUER}`,
    });
  });

  it('refuses leaves that break a name constraint of the chain before signing: no version, no signature', async () => {
    const sign = vi.spyOn(t.kernel.crypto, 'signCertificate');
    const { id, job } = await issueViaApi('app.other.test');
    expect(job.status).toBe('Failed');
    expect(job.last_error).toMatch(/name constraints of CN=Hier Intermediate.*app\.other\.test is outside the permitted subtrees/);
    expect(await versionsOf(db(), id)).toHaveLength(0);
    const refused: [string, string[], RegExp][] = [
      ['bad.example.test', [], /excluded subtree dns:bad\.example\.test/],
      ['deep.bad.example.test', [], /excluded subtree/],
      ['*.example.test', [], /excluded subtree dns:bad\.example\.test/],
      ['ok.example.test', ['192.168.1.1'], /SAN 192\.168\.1\.1 is outside the permitted subtrees \(ip:10\.0\.0\.0\/8\)/],
      ['ok.example.test', ['mallory@evil.test'], /mallory@evil\.test is outside/],
    ];
    for (const [cn, sans, why] of refused) {
      const r = await issue(cn, sans);
      expect(r.status, cn).toBe('denied');
      expect(r.reason).toMatch(why);
    }
    // The CSR's subject is used when the caller gives none: its emailAddress is checked like an email SAN (RFC 5280, as openssl does).
    const mailCsr = makeCsr(tmp.dir, { cn: 'ok.example.test/emailAddress=mallory@evil.test' });
    await expect(t.kernel.caKeystore.sign(ISSUER, { csrPem: mailCsr, notAfter: new Date(Date.now() + 86_400_000).toISOString() }))
      .rejects.toThrow(/subject emailAddress mallory@evil\.test is outside the permitted subtrees \(email:example\.test\)/);
    expect(sign).not.toHaveBeenCalled();
    const ok = await issue('fine.example.test', ['10.9.8.7', 'ops@example.test']);
    expect(ok.status).toBe('issued');
    expect(sign).toHaveBeenCalledTimes(1);
    sign.mockRestore();
  });

  it('a CA with pathlen 0 cannot sign a CA; a child asking for more path length than its chain allows is refused', async () => {
    const before = await caCount();
    const under = await t.api.post(PATH, { parent_id: issuing.id, subject: 'CN=Too Deep' });
    expect(under.status).toBe(409);
    expect(under.body.error.message).toMatch(/pathLenConstraint/);
    const greedy = await t.api.post(PATH, { parent_id: intermediate.id, subject: 'CN=Greedy', path_len_constraint: 3 });
    expect(greedy.status).toBe(400);
    expect(await caCount()).toBe(before);
  });

  it('retires drain-first: the old issuing CA stops signing, keeps OCSP and its CRL, and is retired once drained', async () => {
    const old: Issued = await issueManaged(t, tmp.dir, ISSUER, { cn: 'old.example.test' });
    expect(new crypto.X509Certificate(old.chainPem[0]).fingerprint256).toBe(new crypto.X509Certificate(issuing.certificate_pem).fingerprint256);
    expect((await t.api.post(`${PATH}/${issuing.id}/retire`)).status).toBe(409);
    const second = await t.api.post(PATH, { parent_id: intermediate.id, subject: 'CN=Hier Issuing 2', path_len_constraint: 0, validity_days: 400 });
    expect(second.status).toBe(201);
    expect((await t.api.post(`${PATH}/${second.body.id}/activate`)).body).toMatchObject({ status: 'active', role: 'issuing' });
    expect((await t.api.post(`${PATH}/${intermediate.id}/retire`)).status).toBe(409);
    const retiring = await t.api.post(`${PATH}/${issuing.id}/retire`);
    expect(retiring.status, retiring.text).toBe(200);
    expect(retiring.body.status).toBe('retiring');
    expect(Date.parse(retiring.body.drain_until)).toBe(Date.parse(new crypto.X509Certificate(old.certificatePem).validTo));
    expect((await t.api.post(`${PATH}/${issuing.id}/retire`)).status).toBe(409);

    const fresh = await issueManaged(t, tmp.dir, ISSUER, { cn: 'new.example.test' });
    expect(new crypto.X509Certificate(fresh.chainPem[0]).fingerprint256).toBe(new crypto.X509Certificate(second.body.certificate_pem).fingerprint256);
    expect(fresh.chainPem).toHaveLength(3);

    // The retiring CA still answers OCSP (good, then revoked) and publishes a CRL openssl verifies.
    const issuerFile = write(tmp.dir, 'h-issuing1.pem', issuing.certificate_pem);
    const trust = write(tmp.dir, 'h-trust.pem', issuing.certificate_pem + intermediate.certificate_pem + root.certificate_pem);
    const oldLeaf = write(tmp.dir, 'h-old.pem', old.certificatePem);
    const ocsp = () => run(['ocsp', '-issuer', issuerFile, '-cert', oldLeaf, '-url', ocspUrl(), '-CAfile', trust, '-resp_text']);
    const good = await ocsp();
    expect(good.out).toMatch(/h-old\.pem: good/);
    expect(good.out).toContain('Response verify OK');
    expect((await t.api.post(`/api/v1/certificates/${old.certId}/revoke`, { reason: 'superseded' })).status).toBe(200);
    expect((await ocsp()).out).toMatch(/h-old\.pem: revoked/);
    await revocationOf(t.kernel).crl.runCycle();
    const crlDer = write(tmp.dir, 'h-issuing1.crl', (await raw(t, 'GET', `/.well-known/pki/crl/${ISSUER}/${issuing.id}`)).body);
    const crlCheck = await run(['crl', '-inform', 'DER', '-in', crlDer, '-CAfile', trust, '-noout', '-text']);
    expect(crlCheck.out).toContain('verify OK');
    expect(crlCheck.out).toContain(`Serial Number: ${old.serial.toUpperCase()}`);

    // Drain: not yet while the leaf is valid (its time moves on); retired once everything it signed has expired.
    await db()('certificate_authorities').where({ id: issuing.id }).update({ drain_until: new Date(Date.now() - 1000) });
    expect((await caHierarchyOf(t.kernel).drain()).retired).toEqual([]);
    expect((await t.api.get(`${PATH}/${issuing.id}`)).body).toMatchObject({ status: 'retiring', drain_until: retiring.body.drain_until });
    const past = new Date(Date.now() - 1000);
    // Everything issuing CA 1 signed expires (the leaves of the new CA stay valid and do not hold it back).
    await db()('certificate_versions').whereIn('certificate_id', db()('managed_certificates').where({ issuer_id: ISSUER }).whereNot({ id: fresh.certId }).select('id')).update({ not_after: past });
    await db()('certificate_revocations').where({ certificate_id: old.certId }).update({ not_after: past });
    await db()('certificate_authorities').where({ id: issuing.id }).update({ drain_until: past });
    expect((await caHierarchyOf(t.kernel).drain()).retired).toEqual([issuing.id]);
    expect((await t.api.get(`${PATH}/${issuing.id}`)).body).toMatchObject({ status: 'retired', crl_url: null });
    expect((await raw(t, 'GET', `/.well-known/pki/crl/${ISSUER}/${issuing.id}`)).status).toBe(404);
    expect(await auditCount('ca_retired')).toBe(1);
    expect((await t.api.post(`${PATH}/${issuing.id}/activate`)).status).toBe(409);
    // A CA without an SKI cannot tell its leaves apart: it drains until its own expiry.
    const secondRow = (await new CaStore(db()).byId(second.body.id))!;
    expect(await caHierarchyOf(t.kernel).lastExpiry({ ...secondRow, subject_key_id: null })).toEqual(secondRow.not_after);
  });

  it('a child created while its parent is retired: one of the two is refused, never a retiring CA with a CA in service below it', async () => {
    const spare = await t.api.post(PATH, { parent_id: root.id, subject: 'CN=Hier Spare', validity_days: 30 });
    expect(spare.status, spare.text).toBe(201);
    const [child, retired] = await Promise.all([
      t.api.post(PATH, { parent_id: spare.body.id, subject: 'CN=Hier Spare Child', validity_days: 10 }),
      t.api.post(`${PATH}/${spare.body.id}/retire`),
    ]);
    expect([child.status, retired.status].sort(), `${child.text} / ${retired.text}`).toEqual(child.status === 201 ? [201, 409] : [200, 409]);
    const spareNow = await db()('certificate_authorities').where({ id: spare.body.id }).first('status');
    const below = await db()('certificate_authorities').where({ parent_id: spare.body.id }).whereIn('status', ['active', 'standby']);
    expect(spareNow.status === 'retiring' && below.length > 0).toBe(false);
  });
});
