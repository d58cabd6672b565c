import { afterAll, describe, expect, it } from 'vitest';
import { makeTestPki } from '../../../test/plugins/runtime/test-pki.js';
import { CryptoTaskBatcher } from './crypto-batch.js';
import { CryptoService } from './crypto-service.js';
import type { CryptoOutcome, CryptoTask } from './crypto-types.js';

describe('crypto task batching', () => {
  it('sends the tasks of one turn together, spread over the threads, each answered on its own', async () => {
    const sent: number[] = [];
    const b = new CryptoTaskBatcher(async (tasks) => {
      sent.push(tasks.length);
      return tasks.map((t): CryptoOutcome<unknown> => (t.op === 'verifyCsr' && t.csr === 'bad' ? { ok: false, code: 'csr_invalid', message: 'no' } : { ok: true, value: (t as { csr: string }).csr }));
    }, { maxBatch: 4, threads: () => 2 });
    const csrs = ['a', 'b', 'bad', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    const outs = await Promise.all(csrs.map((csr) => b.submit({ op: 'verifyCsr', csr } as CryptoTask)));
    expect(outs.map((o) => (o.ok ? o.value : o.code))).toEqual(['a', 'b', 'csr_invalid', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
    // 10 tasks on 2 threads: chunks of at most 4.
    expect(sent).toEqual([4, 4, 2]);
    // A later turn is a new batch.
    await b.submit({ op: 'verifyCsr', csr: 'k' } as CryptoTask);
    expect(sent).toEqual([4, 4, 2, 1]);
  });

  it('fails only the chunk whose pool task failed', async () => {
    let n = 0;
    const b = new CryptoTaskBatcher(async (tasks) => {
      if (n++ === 0) throw new Error('worker died');
      return tasks.map((): CryptoOutcome<unknown> => ({ ok: true, value: 'ok' }));
    }, { maxBatch: 2, threads: () => 1 });
    const outs = await Promise.allSettled([1, 2, 3].map((i) => b.submit({ op: 'verifyCsr', csr: String(i) } as CryptoTask)));
    expect(outs.map((o) => o.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
  });

  describe('through the pool', () => {
    const pki = makeTestPki();
    const svc = new CryptoService({ maxThreads: 1 });
    afterAll(async () => { await svc.close(); pki.cleanup(); });

    it('a bad request among concurrent signatures fails alone; the others are signed for their own CSRs', async () => {
      const csrs = Array.from({ length: 6 }, (_, i) => pki.csr(`c${i}`, { sans: `DNS:c${i}.example.test` }));
      const request = (csrPem: string, i: number) => ({
        csrPem, issuerCertPem: pki.caCertPem, issuerKeyPem: pki.caKeyPem, serialNumberHex: (0x1000 + i).toString(16),
        notBefore: new Date(Date.now() - 60_000).toISOString(), notAfter: new Date(Date.now() + 86_400_000).toISOString(),
        extensions: { extendedKeyUsage: [i === 3 ? 'noSuchUsage' : 'serverAuth'] },
      });
      const outs = await Promise.allSettled(csrs.map((c, i) => svc.signCertificate(request(c, i))));
      expect(outs.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect((outs[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'bad_request' });
      outs.forEach((o, i) => { if (o.status === 'fulfilled') expect(o.value.serialNumberHex).toBe((0x1000 + i).toString(16)); });
    });
  });
});
