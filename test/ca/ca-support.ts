import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Plugins only the CA tests load (a ca.* probe and an issuer without the ca grant). */
export const CA_FIXTURE_PLUGINS_DIR = fileURLToPath(new URL('./fixtures/plugins/', import.meta.url));

/** A scratch directory for openssl material, removed by `cleanup`. */
export function scratch(): { dir: string; file(name: string): string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-ca-test-'));
  return { dir, file: (name) => path.join(dir, name), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export function openssl(args: string[], opts: { cwd?: string; input?: string } = {}): string {
  return execFileSync('openssl', args, { cwd: opts.cwd, input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] }).toString('utf8');
}

/** `openssl verify`: true when the leaf chains to the root (through the untrusted intermediates). */
export function opensslVerifies(dir: string, rootPem: string, leafPem: string, intermediates: string[] = []): { ok: boolean; output: string } {
  const id = crypto.randomBytes(4).toString('hex');
  const root = path.join(dir, `root-${id}.pem`);
  const leaf = path.join(dir, `leaf-${id}.pem`);
  fs.writeFileSync(root, rootPem);
  fs.writeFileSync(leaf, leafPem);
  const args = ['verify', '-CAfile', root];
  if (intermediates.length) {
    const mid = path.join(dir, `mid-${id}.pem`);
    fs.writeFileSync(mid, intermediates.join(''));
    args.push('-untrusted', mid);
  }
  try {
    return { ok: true, output: openssl([...args, leaf]) };
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    return { ok: false, output: `${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}` };
  }
}

/** `openssl x509 -text` of a PEM certificate. */
export const x509Text = (pem: string) => openssl(['x509', '-noout', '-text'], { input: pem });

/** A fresh key and CSR made by openssl. */
export function makeCsr(dir: string, opts: { key?: 'ec' | 'rsa'; cn: string; sans?: string[] }): string {
  const id = crypto.randomBytes(4).toString('hex');
  const key = opts.key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const args = ['req', '-new', ...key, '-nodes', '-keyout', path.join(dir, `${id}.key`), '-subj', `/CN=${opts.cn}`, '-out', path.join(dir, `${id}.csr`)];
  if (opts.sans?.length) args.push('-addext', `subjectAltName=${opts.sans.map((s) => (s.includes('@') ? `email:${s}` : /^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',')}`);
  openssl(args);
  return fs.readFileSync(path.join(dir, `${id}.csr`), 'utf8');
}

/**
 * An operator PKI made with openssl: a root, and an intermediate signed by it
 * (CA:TRUE pathlen:0 with keyCertSign unless told otherwise). Returns file paths.
 */
export function makeOperatorPki(dir: string, name: string, opts: { ca?: boolean; keyCertSign?: boolean; days?: number } = {}): { rootPem: string; certPath: string; keyPath: string; bundlePath: string; intermediatePem: string } {
  const f = (n: string) => path.join(dir, `${name}-${n}`);
  if (!fs.existsSync(f('root.crt'))) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', f('root.key'), '-out', f('root.crt'), '-subj', `/CN=${name} Operator Root`, '-days', '3650',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('int.key'), '-subj', `/CN=${name} Issuing CA`, '-out', f('int.csr')]);
  const ext = [
    `basicConstraints=critical,${opts.ca === false ? 'CA:FALSE' : 'CA:TRUE,pathlen:0'}`,
    `keyUsage=critical,${opts.keyCertSign === false ? 'digitalSignature,cRLSign' : 'keyCertSign,cRLSign,digitalSignature'}`,
    'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid',
  ];
  fs.writeFileSync(f('int.ext'), `${ext.join('\n')}\n`);
  openssl(['x509', '-req', '-in', f('int.csr'), '-CA', f('root.crt'), '-CAkey', f('root.key'), '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`, '-days', String(opts.days ?? 1825), '-extfile', f('int.ext'), '-out', f('int.crt')]);
  fs.chmodSync(f('int.key'), 0o600);
  const intermediatePem = fs.readFileSync(f('int.crt'), 'utf8');
  const rootPem = fs.readFileSync(f('root.crt'), 'utf8');
  fs.writeFileSync(f('bundle.crt'), intermediatePem + rootPem);
  return { rootPem, certPath: f('int.crt'), keyPath: f('int.key'), bundlePath: f('bundle.crt'), intermediatePem };
}

/** An IssueRequest for a CSR. */
export function issueRequest(csrPem: string, fields: { certificateId?: string; commonName: string; sans?: string[]; notAfter?: string; ekus?: string[]; maxTtlSeconds?: number | null }) {
  return {
    certificateId: fields.certificateId ?? `mc-${crypto.randomBytes(4).toString('hex')}`,
    csrPem,
    commonName: fields.commonName,
    sans: fields.sans ?? [],
    ...(fields.notAfter ? { notAfter: fields.notAfter } : {}),
    profile: { id: null, maxTtlSeconds: fields.maxTtlSeconds ?? null, ekus: fields.ekus ?? ['serverAuth'] },
  };
}
