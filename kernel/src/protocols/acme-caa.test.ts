import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/support/free-port.js';
import { waitFor } from '../../../test/support/wait.js';
import { checkCaa } from './acme-caa.js';

/* CAA lookups against a real DNS server (pebble-challtestsrv), for what the ACME flow tests do not reach. */
describe('checkCaa', () => {
  let dns: ChildProcess;
  let resolvers: string[];
  let mgmt: number;

  beforeAll(async () => {
    const [dnsPort, mgmtPort] = await Promise.all([freePort(), freePort()]);
    mgmt = mgmtPort;
    resolvers = [`127.0.0.1:${dnsPort}`];
    dns = spawn('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
      '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${mgmtPort}`], { stdio: 'ignore' });
    const addCaa = (host: string, value: string) => fetch(`http://127.0.0.1:${mgmt}/add-caa`, { method: 'POST', body: JSON.stringify({ host, policies: [{ tag: 'issue', value }] }) });
    await waitFor('pebble-challtestsrv', () => addCaa('caatld.', 'other-ca.example').then((r) => r.ok, () => false));
  });
  afterAll(() => {
    dns?.kill();
  });

  it('climbs to the TLD: a CAA record set there is the relevant one (RFC 8659 3)', async () => {
    expect(await checkCaa('www.shop.caatld', false, ['certctl.test'], resolvers)).toMatchObject({ ok: false, error: 'caa', reason: expect.stringContaining('at caatld') });
    expect(await checkCaa('www.shop.caatld', false, ['other-ca.example'], resolvers)).toEqual({ ok: true });
    // No record set anywhere up to the TLD: any CA may issue.
    expect(await checkCaa('www.nothing.test', false, ['certctl.test'], resolvers)).toEqual({ ok: true });
  });
});
