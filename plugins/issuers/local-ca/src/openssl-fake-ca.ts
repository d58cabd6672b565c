import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CaEnsureRequest, CaInfo, CaSignRequest, CaSignResult } from '@certctl/sdk';

/**
 * A stand-in for the kernel's CA keystore in plugin tests, backed by the openssl
 * command: a P-256 root made once, CSRs checked with `openssl req -verify` and
 * signed with `openssl x509 -req`. Errors carry the keystore's codes
 * (csr_invalid, ca_not_configured), so the plugin's error mapping is exercised.
 * Test-only: it is never loaded by the plugin itself.
 */
export function opensslFakeCa(opts: { configured?: boolean } = {}): { ensure(r: CaEnsureRequest): Promise<CaInfo>; sign(r: CaSignRequest): Promise<CaSignResult>; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-fake-ca-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=certctl fake CA', '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
  const caPem = fs.readFileSync(file('ca.crt'), 'utf8');
  const ca = new crypto.X509Certificate(caPem);
  const info: CaInfo = { caId: 'ca-fake', source: opts.configured ? 'configured' : 'generated', certificatePem: caPem, chainPem: [caPem], notBefore: new Date(ca.validFrom).toISOString(), notAfter: new Date(ca.validTo).toISOString() };
  const fail = (code: string, message: string) => Object.assign(new Error(message), { code });
  const ekuName = (e: string) => (e === 'ocspSigning' ? 'OCSPSigning' : e);
  const sanEntry = (s: string) => (/^[\d.]+$|:/.test(s) && !/^[a-z]+:\/\//i.test(s) ? `IP:${s}` : s.includes('@') ? `email:${s}` : /^[a-z]+:\/\//i.test(s) ? `URI:${s}` : `DNS:${s}`);

  return {
    dir,
    async ensure(request) {
      if (request.source === 'configured' && !opts.configured) throw fail('ca_not_configured', 'sub-CA mode needs CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH');
      return info;
    },
    async sign(request) {
      const id = crypto.randomBytes(6).toString('hex');
      fs.writeFileSync(file(`${id}.csr`), request.csrPem);
      try {
        try {
          openssl(['req', '-verify', '-noout', '-in', `${id}.csr`]);
        } catch {
          throw fail('csr_invalid', 'the CSR cannot be parsed or its signature does not verify');
        }
        const notAfter = Math.min(Date.parse(request.notAfter), Date.parse(info.notAfter));
        const days = Math.max(1, Math.ceil((notAfter - Date.now()) / 86_400_000));
        const ext = ['basicConstraints=critical,CA:FALSE', `keyUsage=critical,${(request.keyUsage ?? ['digitalSignature']).join(',')}`, 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
        if (request.extendedKeyUsage?.length) ext.push(`extendedKeyUsage=${request.extendedKeyUsage.map(ekuName).join(',')}`);
        if (request.sans?.length) ext.push(`subjectAltName=${request.sans.map(sanEntry).join(',')}`);
        fs.writeFileSync(file(`${id}.ext`), `${ext.join('\n')}\n`);
        const serial = crypto.randomBytes(16);
        serial[0] &= 0x7f;
        const args = ['x509', '-req', '-in', `${id}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${serial.toString('hex')}`, '-days', String(days), '-extfile', `${id}.ext`, '-out', `${id}.crt`];
        const cn = /^CN=(.+)$/.exec(request.subject ?? '')?.[1];
        if (cn) args.push('-subj', `/CN=${cn.replace(/\\(.)/g, '$1').replace(/\//g, '\\/')}`);
        openssl(args);
        const pem = fs.readFileSync(file(`${id}.crt`), 'utf8');
        const cert = new crypto.X509Certificate(pem);
        return {
          certificatePem: pem, chainPem: [caPem], serialNumberHex: cert.serialNumber.toLowerCase(),
          notBefore: new Date(cert.validFrom).toISOString(), notAfter: new Date(cert.validTo).toISOString(),
          fingerprintSha256: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
        };
      } finally {
        for (const f of ['csr', 'ext', 'crt']) fs.rmSync(file(`${id}.${f}`), { force: true });
      }
    },
  };
}
