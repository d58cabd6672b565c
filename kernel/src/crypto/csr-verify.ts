import type { CsrInfo } from './crypto-types.js';
import { x509 } from './x509-setup.js';
import { verifyCsrFast } from './csr-fast.js';
import { describePublicKey } from './public-key.js';

const MAX_CSR_BYTES = 64 * 1024;

/** OpenSSL's name for a signature algorithm as WebCrypto describes it. */
function signatureAlgorithmName(alg: { name: string; hash?: { name: string } | string }): string {
  const hash = (typeof alg.hash === 'string' ? alg.hash : alg.hash?.name ?? '').replace('-', '');
  switch (alg.name) {
    case 'RSASSA-PKCS1-v1_5': return `${hash.toLowerCase()}WithRSAEncryption`;
    case 'RSA-PSS': return 'rsassaPss';
    case 'ECDSA': return `ecdsa-with-${hash}`;
    case 'Ed25519': return 'ED25519';
    case 'Ed448': return 'ED448';
    default: return alg.name;
  }
}

/** SAN values of an extension list (DNS, IP, email, URI; other name forms are skipped). */
function sanValues(extensions: readonly x509.Extension[]): string[] {
  const ext = extensions.find((e) => e.type === '2.5.29.17');
  if (!ext) return [];
  const names = (ext instanceof x509.SubjectAlternativeNameExtension ? ext : new x509.SubjectAlternativeNameExtension(ext.rawData)).names.toJSON();
  return names.filter((n) => ['dns', 'ip', 'email', 'url'].includes(n.type)).map((n) => n.value);
}

const invalid = (reason: string): CsrInfo => ({ valid: false, reason, subject: '', sans: [], publicKeyAlgorithm: '', keySize: null, signatureAlgorithm: '' });

/**
 * Parses a PKCS#10 request (PEM text or DER bytes) and checks its
 * self-signature, i.e. that whoever sent it holds the private key. Never
 * throws for bad input: an unusable CSR is `{ valid: false, reason }`.
 */
export async function verifyCsr(input: string | Uint8Array): Promise<CsrInfo> {
  const size = typeof input === 'string' ? input.length : input?.byteLength;
  if (!size) return invalid('the CSR is empty');
  if (size > MAX_CSR_BYTES) return invalid(`the CSR is over ${MAX_CSR_BYTES} bytes`);
  if (typeof input === 'string' && !/-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(input)) return invalid('the CSR is not PEM (expected -----BEGIN CERTIFICATE REQUEST-----)');
  // The common shapes are read and checked without the general library (see csr-fast.ts).
  const fast = await verifyCsrFast(input);
  if (fast) return fast.info;
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(typeof input === 'string' ? input.replace(/NEW CERTIFICATE REQUEST/g, 'CERTIFICATE REQUEST') : new Uint8Array(input));
  } catch (err) {
    return invalid(`not a PKCS#10 certificate request: ${(err as Error).message}`);
  }
  let info: CsrInfo;
  try {
    info = {
      valid: false,
      subject: csr.subject,
      sans: sanValues(csr.extensions),
      ...describePublicKey(csr.publicKey.rawData),
      signatureAlgorithm: signatureAlgorithmName(csr.signatureAlgorithm as { name: string; hash?: { name: string } }),
    };
  } catch (err) {
    return invalid(`the certificate request cannot be read: ${(err as Error).message}`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch (err) {
    return { ...info, reason: `the signature cannot be checked: ${(err as Error).message}` };
  }
  return ok ? { ...info, valid: true } : { ...info, reason: 'the CSR signature does not match its public key' };
}
