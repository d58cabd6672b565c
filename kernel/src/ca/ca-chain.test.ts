import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateCaChain } from './ca-chain.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-ca-chain-'));
const f = (n: string) => path.join(dir, n);
const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });

/** An openssl-made CA certificate (self-signed, or signed by `parent`), with the given extensions. */
function ca(name: string, ext: string[], parent?: string): string {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${name}`, '-out', f(`${name}.csr`)]);
  fs.writeFileSync(f(`${name}.ext`), `${[...ext, 'subjectKeyIdentifier=hash'].join('\n')}\n`);
  const signer = parent ? ['-CA', f(`${parent}.crt`), '-CAkey', f(`${parent}.key`), '-set_serial', '0x1234'] : ['-key', f(`${name}.key`)];
  openssl(['x509', '-req', '-in', f(`${name}.csr`), ...signer, '-days', '30', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`)]);
  return fs.readFileSync(f(`${name}.crt`), 'utf8');
}

describe('CA chain validation before use (RFC 5280 6.1)', () => {
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const caExt = (extra = '') => [`basicConstraints=critical,CA:TRUE${extra}`, 'keyUsage=critical,keyCertSign,cRLSign'];
  const root = ca('root', caExt(',pathlen:0'));
  const mid = ca('mid', [...caExt(), 'nameConstraints=critical,permitted;DNS:example.com'], 'root');
  const leafish = ca('notca', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature'], 'root');
  const noSign = ca('nosign', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,cRLSign'], 'root');
  const other = ca('other', caExt());
  const now = Date.now();

  it('accepts a root alone and collects the name constraints of a chain', () => {
    expect(validateCaChain([root], now).constraints).toEqual([]);
    const below = ca('ok-mid', [...caExt(), 'nameConstraints=critical,permitted;DNS:example.com,excluded;IP:10.0.0.0/255.0.0.0'], 'other');
    const v = validateCaChain([below, other], now);
    expect(v.constraints).toEqual([{ subject: 'CN=ok-mid', nc: { permitted: { dns: ['example.com'], ip: [], email: [] }, excluded: { dns: [], ip: ['10.0.0.0/8'], email: [] }, unsupported: false } }]);
  });

  it('refuses path length, non-CA, keyCertSign, signature and expiry violations', () => {
    expect(() => validateCaChain([mid, root], now)).toThrow(/allows 0 CA certificate\(s\) below it/);
    expect(() => validateCaChain([leafish, root], now)).toThrow(/is not a CA/);
    expect(() => validateCaChain([noSign, root], now)).toThrow(/keyCertSign is missing/);
    expect(() => validateCaChain([mid, other], now)).toThrow(/is not signed by/);
    expect(() => validateCaChain([other], now + 60 * 86_400_000)).toThrow(expect.objectContaining({ code: 'ca_expired' }));
  });

  it('counts path length as RFC 5280 does: self-issued links are not counted, and the budget left is reported', () => {
    // A key-rollover link: subject and issuer both CN=lroot, a new key, signed by the old root (pathlen:1).
    ca('lroot', caExt(',pathlen:1'));
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('link.key'), '-subj', '/CN=lroot', '-out', f('link.csr')]);
    fs.writeFileSync(f('link.ext'), `${caExt().join('\n')}\nsubjectKeyIdentifier=hash\n`);
    openssl(['x509', '-req', '-in', f('link.csr'), '-CA', f('lroot.crt'), '-CAkey', f('lroot.key'), '-set_serial', '0x77', '-days', '30', '-extfile', f('link.ext'), '-out', f('link.crt')]);
    const link = fs.readFileSync(f('link.crt'), 'utf8');
    const lroot = fs.readFileSync(f('lroot.crt'), 'utf8');
    const below = ca('under-link', caExt(), 'link');
    const v = validateCaChain([below, link, lroot], now);
    expect(v.pathBudget).toBe(0);
    // openssl agrees the path is valid.
    fs.writeFileSync(f('leaf.ext'), 'basicConstraints=critical,CA:FALSE\n');
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('lleaf.key'), '-subj', '/CN=leaf', '-out', f('lleaf.csr')]);
    openssl(['x509', '-req', '-in', f('lleaf.csr'), '-CA', f('under-link.crt'), '-CAkey', f('under-link.key'), '-set_serial', '0x78', '-days', '5', '-extfile', f('leaf.ext'), '-out', f('lleaf.crt')]);
    fs.writeFileSync(f('lchain.pem'), below + link);
    expect(openssl(['verify', '-CAfile', f('lroot.crt'), '-untrusted', f('lchain.pem'), f('lleaf.crt')]).toString()).toContain(': OK');
    expect(validateCaChain([root], now).pathBudget).toBe(0);
    expect(validateCaChain([other], now).pathBudget).toBe(Infinity);
  });

  it('accepts what RFC 5280 and openssl accept: no KeyUsage extension, a version 1 self-signed root', () => {
    const noKu = ca('noku', ['basicConstraints=critical,CA:TRUE']);
    expect(validateCaChain([ca('under-noku', caExt(), 'noku'), noKu], now).constraints).toEqual([]);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('v1root.key'), '-subj', '/CN=v1root', '-out', f('v1root.csr')]);
    openssl(['x509', '-req', '-in', f('v1root.csr'), '-key', f('v1root.key'), '-days', '30', '-out', f('v1root.crt')]);
    const v1 = fs.readFileSync(f('v1root.crt'), 'utf8');
    expect(validateCaChain([ca('under-v1', caExt(), 'v1root'), v1], now).pathBudget).toBe(Infinity);
    // Only as the anchor: a version 1 certificate below is no CA.
    expect(() => validateCaChain([v1, noKu], now)).toThrow(/is not a CA|is not signed by/);
  });

  it('refuses name constraints it cannot enforce rather than ignoring them', () => {
    const dirName = ca('dirname', [...caExt(), 'nameConstraints=critical,permitted;dirName:dir_sect', '[dir_sect]', 'O=Acme'], 'other');
    expect(() => validateCaChain([dirName, other], now)).toThrow(/cannot enforce/);
  });
});
