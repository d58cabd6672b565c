import { describe, expect, it } from 'vitest';
import type { Json } from '@certctl/sdk';
import { forgetEnsuredAfter, memoisedEnsure } from './ca-ensure-memo.js';

describe('ca.ensure memo in the plugin worker', () => {
  let clock = 1_000_000;
  const now = () => clock;
  const asker = () => {
    const asked: Json[] = [];
    let n = 0;
    return { asked, ask: (request: Json) => async () => { asked.push(request); return { caId: `ca-${++n}`, chainPem: ['PEM'] } as Json; } };
  };
  const generate = { source: 'generate', subject: 'CN=A', keyAlgorithm: 'ECDSA-P256', validityDays: 10 };

  it('asks the kernel once per instance and request while the answer is fresh', async () => {
    const k = asker();
    const a = await memoisedEnsure('iss-a', generate, k.ask(generate), now);
    const b = await memoisedEnsure('iss-a', generate, k.ask(generate), now);
    expect(b).toEqual(a);
    expect(k.asked).toHaveLength(1);
    // Another instance, or another request (a config change), asks again.
    await memoisedEnsure('iss-b', generate, k.ask(generate), now);
    await memoisedEnsure('iss-a', { source: 'configured' }, k.ask({ source: 'configured' }), now);
    expect(k.asked).toHaveLength(3);
  });

  it('hands out a copy the plugin cannot spoil for the next call', async () => {
    const k = asker();
    const first = (await memoisedEnsure('iss-copy', generate, k.ask(generate), now)) as { chainPem: string[] };
    first.chainPem.push('tampered');
    expect(await memoisedEnsure('iss-copy', generate, k.ask(generate), now)).toEqual({ caId: 'ca-1', chainPem: ['PEM'] });
  });

  it('asks again once the answer is older than the keystore cache', async () => {
    const k = asker();
    await memoisedEnsure('iss-ttl', generate, k.ask(generate), now);
    clock += 4_999;
    await memoisedEnsure('iss-ttl', generate, k.ask(generate), now);
    expect(k.asked).toHaveLength(1);
    clock += 2;
    expect(await memoisedEnsure('iss-ttl', generate, k.ask(generate), now)).toEqual({ caId: 'ca-2', chainPem: ['PEM'] });
  });

  it('forgets an instance after a signature refused for a reason about its CA, not for a bad request', async () => {
    const k = asker();
    await memoisedEnsure('iss-f', generate, k.ask(generate), now);
    forgetEnsuredAfter('iss-f', Object.assign(new Error('bad csr'), { code: 'csr_invalid' }));
    await memoisedEnsure('iss-f', generate, k.ask(generate), now);
    expect(k.asked).toHaveLength(1);
    forgetEnsuredAfter('iss-f', Object.assign(new Error('gone'), { code: 'ca_missing' }));
    await memoisedEnsure('iss-f', generate, k.ask(generate), now);
    expect(k.asked).toHaveLength(2);
  });

  it('does not remember a failed ensure', async () => {
    await expect(memoisedEnsure('iss-x', generate, async () => { throw new Error('ca_not_configured'); }, now)).rejects.toThrow('ca_not_configured');
    const k = asker();
    await memoisedEnsure('iss-x', generate, k.ask(generate), now);
    expect(k.asked).toHaveLength(1);
  });
});
