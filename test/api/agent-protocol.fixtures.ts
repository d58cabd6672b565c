import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Real PKI material for the agent-protocol and discovery tests, made with the
 * openssl CLI (Debian package openssl): EC P-256 keys, CSRs and certificates.
 */
export class Pki {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-agent-pki-'));
  private n = 0;

  private run(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private file(ext: string): string {
    return path.join(this.dir, `f${++this.n}.${ext}`);
  }

  key(): string {
    const out = this.file('key');
    this.run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out]);
    return out;
  }

  private sanExt(sans: string[]): string[] {
    return sans.length ? ['-addext', `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}`] : [];
  }

  csr(cn: string, sans: string[] = [cn], key = this.key()): string {
    const out = this.file('csr');
    this.run(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, ...this.sanExt(sans), '-out', out]);
    return fs.readFileSync(out, 'utf8');
  }

  selfSigned(cn: string, sans: string[] = [cn], opts: { ca?: boolean; key?: string } = {}): { pem: string; key: string } {
    const key = opts.key ?? this.key();
    const out = this.file('crt');
    const ext = opts.ca ? ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'] : ['-addext', 'basicConstraints=critical,CA:FALSE'];
    this.run(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${cn}`, '-days', '30', ...this.sanExt(sans), ...ext, '-out', out]);
    return { pem: fs.readFileSync(out, 'utf8'), key };
  }

  /** A leaf signed by a fresh CA: { leaf, ca } PEMs. */
  chain(cn: string): { leaf: string; ca: string } {
    const ca = this.selfSigned(`${cn} test CA`, [], { ca: true });
    const caFile = this.file('crt');
    fs.writeFileSync(caFile, ca.pem);
    const csrFile = this.file('csr');
    fs.writeFileSync(csrFile, this.csr(cn));
    const out = this.file('crt');
    this.run(['x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', ca.key, '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`, '-days', '30', '-copy_extensions', 'copy', '-out', out]);
    return { leaf: fs.readFileSync(out, 'utf8'), ca: ca.pem };
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The same CSR with one bit of its signature flipped: still parses, no longer verifies. */
export function breakSignature(csrPem: string): string {
  const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  der[der.length - 1] ^= 0x01;
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`;
}

export const sha256Fingerprint = (pem: string) => new crypto.X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
