import crypto from 'node:crypto';
import { derToPem, pemCertificates } from '../../crypto/der.js';
import { describePublicKey } from '../../crypto/public-key.js';

/** What the server reads from a certificate itself; an agent's description of it is never trusted. */
export interface CertificateFacts {
  fingerprint_sha256: string;
  common_name: string;
  sans: string[];
  subject_dn: string;
  issuer_dn: string;
  serial_number: string;
  not_before: Date;
  not_after: Date;
  key_algorithm: string | null;
  key_size: number | null;
  is_ca: boolean;
  /** The certificate re-encoded from its DER, so stored PEM is canonical. */
  certificate_pem: string;
}

/** Node prints a DN one attribute per line ("CN=a\nO=b"); we show it comma-separated, most specific first. */
const dn = (lines: string): string => lines.split('\n').filter(Boolean).reverse().join(', ');

const commonName = (subject: string): string => {
  const cn = subject.split('\n').find((l) => l.startsWith('CN='));
  return cn ? cn.slice(3) : '';
};

/** "DNS:a.example, IP Address:10.0.0.1, email:x@y" -> values; quoted entries (with commas) are unquoted. */
function subjectAltNames(raw: string | undefined): string[] {
  if (!raw) return [];
  const out: string[] = [];
  for (const m of raw.matchAll(/(?:^|, )(DNS|IP Address|email|URI):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const v = m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2];
    if (v) out.push(v);
  }
  return out;
}

/** The key as the crypto layer describes it (describePublicKey), an EC key named by its curve: ECDSA-P256. */
function keyFacts(cert: crypto.X509Certificate): { key_algorithm: string | null; key_size: number | null } {
  const { publicKeyAlgorithm, keySize } = describePublicKey(cert.publicKey);
  if (publicKeyAlgorithm === 'EC') return { key_algorithm: keySize ? `ECDSA-P${keySize}` : 'EC', key_size: keySize };
  return { key_algorithm: publicKeyAlgorithm, key_size: keySize };
}

/** Parses exactly one PEM certificate; throws a short reason when it is not one. */
export function certificateFacts(pem: string): CertificateFacts {
  const blocks = pemCertificates(pem);
  if (blocks.length !== 1) throw new Error(blocks.length ? 'more than one certificate in certificate_pem' : 'not a PEM certificate');
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(blocks[0]);
  } catch {
    throw new Error('the certificate cannot be parsed');
  }
  return {
    fingerprint_sha256: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    common_name: commonName(cert.subject),
    sans: subjectAltNames(cert.subjectAltName),
    subject_dn: dn(cert.subject),
    issuer_dn: dn(cert.issuer),
    serial_number: cert.serialNumber.toLowerCase(),
    not_before: new Date(cert.validFrom),
    not_after: new Date(cert.validTo),
    ...keyFacts(cert),
    is_ca: cert.ca,
    certificate_pem: derToPem(cert.raw, 'CERTIFICATE'),
  };
}
