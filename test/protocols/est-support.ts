import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One request with the real curl, verifying the kernel's TLS certificate. `file`
 * bodies are sent byte for byte (--data-binary @file); a client certificate is
 * presented with --cert/--key.
 */
export async function curl(dir: string, url: string, opts: {
  cacert: string; method?: string; user?: string; contentType?: string; bodyFile?: string; cert?: string; key?: string; headers?: string[];
}): Promise<CurlResult> {
  const id = crypto.randomBytes(4).toString('hex');
  const headerFile = path.join(dir, `h-${id}`);
  const bodyFile = path.join(dir, `b-${id}`);
  const args = ['-sS', '--cacert', opts.cacert, '-D', headerFile, '-o', bodyFile, '-w', '%{http_code}'];
  if (opts.method) args.push('-X', opts.method);
  if (opts.user) args.push('-u', opts.user);
  if (opts.contentType) args.push('-H', `Content-Type: ${opts.contentType}`);
  for (const h of opts.headers ?? []) args.push('-H', h);
  if (opts.bodyFile) args.push('--data-binary', `@${opts.bodyFile}`);
  if (opts.cert) args.push('--cert', opts.cert, '--key', opts.key!);
  args.push(url);
  const { stdout } = await run('curl', args);
  const headers: Record<string, string> = {};
  for (const line of fs.readFileSync(headerFile, 'utf8').split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return { status: Number(stdout.trim()), headers, body: fs.readFileSync(bodyFile) };
}

export async function openssl(args: string[], input?: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args[0]} failed: ${stderr.toString()}`));
      else resolve(stdout.toString('utf8'));
    });
    // Commands that read files, not stdin, may exit before the write: that is not an error.
    child.stdin!.on('error', () => {});
    child.stdin!.end(input ?? '');
  });
}

/** The certificates of an EST certs-only answer (base64 PKCS#7), as `openssl pkcs7 -print_certs` prints them. */
export async function printCerts(base64Body: Buffer): Promise<string> {
  const der = Buffer.from(base64Body.toString('latin1').replace(/\s+/g, ''), 'base64');
  return openssl(['pkcs7', '-inform', 'DER', '-print_certs'], der);
}

/** PEM blocks of `openssl pkcs7 -print_certs` output. */
export const pemCerts = (text: string): string[] => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];

/** A key and CSR made by openssl; the CSR also written as base64 DER (what EST sends). */
export async function newCsr(dir: string, cn: string, opts: { sans?: string[]; key?: string } = {}): Promise<{ key: string; csrPem: string; pemFile: string; b64File: string }> {
  const id = crypto.randomBytes(4).toString('hex');
  const key = opts.key ?? path.join(dir, `${id}.key`);
  const pemFile = path.join(dir, `${id}.csr`);
  const keyArgs = opts.key ? ['-key', opts.key] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key];
  const args = ['req', '-new', ...keyArgs, '-subj', `/CN=${cn}`, '-out', pemFile];
  if (opts.sans?.length) args.push('-addext', `subjectAltName=${opts.sans.map((s) => `DNS:${s}`).join(',')}`);
  await openssl(args);
  const derBytes = await new Promise<Buffer>((resolve, reject) => {
    execFile('openssl', ['req', '-in', pemFile, '-outform', 'DER'], { encoding: 'buffer' }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
  const b64File = path.join(dir, `${id}.b64`);
  fs.writeFileSync(b64File, derBytes.toString('base64').replace(/(.{64})/g, '$1\n'));
  return { key, csrPem: fs.readFileSync(pemFile, 'utf8'), pemFile, b64File };
}
