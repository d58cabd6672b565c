import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { DiscoveryReport } from '@certctl/kernel';

export const SCAN_LIMITS = { maxDepth: 16, maxFileBytes: 1024 * 1024, maxFiles: 50_000, maxCertificates: 20_000 };
const CERT_EXTENSIONS = new Set(['.pem', '.crt', '.cer', '.cert', '.der']);
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

type Found = DiscoveryReport['certificates'][number];

/** Certificates in one file's bytes: every CERTIFICATE block of a PEM file, or one DER certificate. Keys and other blocks are ignored. */
export function certificatesIn(bytes: Buffer): { certs: crypto.X509Certificate[]; error?: string } {
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN ')) {
    const certs: crypto.X509Certificate[] = [];
    let bad = 0;
    for (const block of text.match(PEM_BLOCK) ?? []) {
      try {
        certs.push(new crypto.X509Certificate(block));
      } catch {
        bad++;
      }
    }
    return bad ? { certs, error: `${bad} certificate block(s) could not be parsed` } : { certs };
  }
  try {
    return { certs: [new crypto.X509Certificate(bytes)] };
  } catch {
    return { certs: [], error: 'neither PEM nor a DER certificate' };
  }
}

/**
 * Walks the discovery directories for certificate files (.pem .crt .cer .cert .der):
 * bounded depth, size and count; each directory visited once by its real path, so
 * symlink loops end. Only certificates are reported; a private key in a PEM file
 * is never read into the report.
 */
export async function scanForCertificates(dirs: string[], limits = SCAN_LIMITS): Promise<DiscoveryReport> {
  const report: DiscoveryReport = { scanned_dirs: dirs, certificates: [], errors: [] };
  const seenDirs = new Set<string>();
  const seenEntries = new Set<string>();
  let files = 0;

  const visit = async (dir: string, depth: number): Promise<void> => {
    if (depth > limits.maxDepth || files >= limits.maxFiles) return;
    let real: string;
    try {
      real = await fs.realpath(dir);
    } catch (err) {
      report.errors!.push({ path: dir, error: (err as NodeJS.ErrnoException).code ?? 'cannot resolve' });
      return;
    }
    if (seenDirs.has(real)) return;
    seenDirs.add(real);
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      report.errors!.push({ path: dir, error: (err as NodeJS.ErrnoException).code ?? 'cannot read' });
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      const p = path.join(dir, e.name);
      const st = await fs.stat(p).catch(() => null); // follows links; a dangling one is skipped
      if (!st) continue;
      if (st.isDirectory()) await visit(p, depth + 1);
      else if (st.isFile() && CERT_EXTENSIONS.has(path.extname(e.name).toLowerCase())) {
        if (++files > limits.maxFiles) return;
        if (st.size > limits.maxFileBytes) {
          report.errors!.push({ path: p, error: `larger than ${limits.maxFileBytes} bytes; skipped` });
          continue;
        }
        await readFile(p);
      }
    }
  };

  const readFile = async (p: string) => {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(p);
    } catch (err) {
      report.errors!.push({ path: p, error: (err as NodeJS.ErrnoException).code ?? 'cannot read' });
      return;
    }
    const { certs, error } = certificatesIn(bytes);
    if (error) report.errors!.push({ path: p, error });
    for (const cert of certs) {
      const fingerprint = crypto.createHash('sha256').update(cert.raw).digest('hex');
      const id = `${fingerprint}|${p}`;
      if (seenEntries.has(id) || report.certificates.length >= limits.maxCertificates) continue;
      seenEntries.add(id);
      report.certificates.push({ fingerprint_sha256: fingerprint, source_path: p, certificate_pem: cert.toString() } satisfies Found);
    }
  };

  for (const d of dirs) await visit(d, 0);
  return report;
}

/** Splits a report into bodies under the server's size limit (the same scanned_dirs in each). */
export function reportBatches(report: DiscoveryReport, maxBytes = 512 * 1024, maxCertificates = 1000): DiscoveryReport[] {
  const batches: DiscoveryReport[] = [];
  const errors = (report.errors ?? []).slice(0, 200).map((e) => ({ path: e.path.slice(0, 4096), error: e.error.slice(0, 1000) }));
  let current: DiscoveryReport = { scanned_dirs: report.scanned_dirs.slice(0, 100), certificates: [], errors };
  let size = JSON.stringify(current).length;
  for (const c of report.certificates) {
    const add = JSON.stringify(c).length + 1;
    if (current.certificates.length && (size + add > maxBytes || current.certificates.length >= maxCertificates)) {
      batches.push(current);
      current = { scanned_dirs: report.scanned_dirs.slice(0, 100), certificates: [], errors: [] };
      size = JSON.stringify(current).length;
    }
    current.certificates.push(c);
    size += add;
  }
  batches.push(current);
  return batches;
}
