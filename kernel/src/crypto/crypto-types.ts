/**
 * Requests and results of the crypto pool. Plain data only: they cross into a
 * worker thread. Keys travel only to this pool, never to a plugin.
 */

export interface CsrInfo {
  /** The CSR parsed and its self-signature verified. */
  valid: boolean;
  /** Why it is not valid (unparsable, bad signature, unsupported key). */
  reason?: string;
  /** RFC 4514-style subject, e.g. "CN=app.example.com, O=Acme". */
  subject: string;
  /** Subject alternative names requested: DNS names, IP addresses, emails, URIs (values only). */
  sans: string[];
  /** 'RSA', 'EC', 'Ed25519', 'Ed448' ... */
  publicKeyAlgorithm: string;
  /** RSA modulus bits, EC curve bits (256, 384, 521), Ed25519 256; null when unknown. */
  keySize: number | null;
  /** EC curve name (P-256, P-384, P-521) when publicKeyAlgorithm is EC. */
  namedCurve?: string;
  /** OpenSSL-style name, e.g. sha256WithRSAEncryption, ecdsa-with-SHA256. */
  signatureAlgorithm: string;
}

export const KEY_USAGES = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'] as const;
export type KeyUsageName = (typeof KEY_USAGES)[number];

export const EXTENDED_KEY_USAGES = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
} as const;

export interface CertificateExtensionsSpec {
  /** Default: digitalSignature (EC, Ed25519) or digitalSignature + keyEncipherment (RSA); critical. */
  keyUsage?: KeyUsageName[];
  /** Names from EXTENDED_KEY_USAGES or dotted OIDs. Omitted when absent. */
  extendedKeyUsage?: string[];
  /** Default { ca: false }; always critical. */
  basicConstraints?: { ca: boolean; pathLength?: number };
  /** Default true. */
  subjectKeyIdentifier?: boolean;
  /** Default true: the issuer's SKI, or one computed from its public key. */
  authorityKeyIdentifier?: boolean;
  crlDistributionPoints?: string[];
  authorityInfoAccess?: { ocsp?: string[]; caIssuers?: string[] };
}

export interface SignCertificateRequest {
  csrPem: string;
  issuerCertPem: string;
  /** PKCS#8 PEM (PKCS#1 and SEC1 PEM are accepted too). */
  issuerKeyPem: string;
  /** 1 to 20 bytes of hex; a leading zero is added if the top bit is set, so the serial stays positive. */
  serialNumberHex: string;
  /** ISO 8601. */
  notBefore: string;
  notAfter: string;
  /** Replaces the CSR's subject, e.g. "CN=app.example.com, O=Acme". */
  subject?: string;
  /** Replaces the CSR's SANs; strings are classified as IP, email, URI or DNS name. */
  sans?: string[];
  extensions?: CertificateExtensionsSpec;
  /** Issue even if notAfter is past the issuer certificate's notAfter. Default false. */
  allowBeyondIssuer?: boolean;
}

export interface SignedCertificate {
  certificatePem: string;
  serialNumberHex: string;
  notBefore: string;
  notAfter: string;
  fingerprintSha256: string;
}

export type CryptoErrorCode = 'bad_request' | 'csr_invalid' | 'issuer_invalid' | 'key_mismatch' | 'crashed' | 'timeout' | 'unavailable';

export class CryptoError extends Error {
  constructor(readonly code: CryptoErrorCode, message: string) {
    super(message);
    this.name = 'CryptoError';
  }
}

/** A CRL to encode and sign (crl-encoder.ts); entries packed, see packCrlEntries. */
export interface CrlRequest {
  issuerCertPem: string;
  issuerKeyPem: string;
  /** Decimal. */
  crlNumber: string;
  /** Epoch milliseconds. */
  thisUpdate: number;
  nextUpdate: number;
  /** Each serial as a length byte then its big-endian magnitude. */
  serials: Uint8Array;
  /** Revocation times, epoch seconds. */
  revokedAt: Float64Array;
  /** RFC 5280 reason codes; 0 writes no reason extension. */
  reasons: Uint8Array;
  count: number;
}

export interface CrlResult {
  der: Uint8Array;
  entries: number;
}

/** A delegated OCSP responder certificate with a fresh P-256 key (ocsp-responder-cert.ts). */
export interface OcspResponderRequest {
  issuerCertPem: string;
  issuerKeyPem: string;
  serialNumberHex: string;
  subject: string;
  notBefore: number;
  notAfter: number;
}

export interface OcspResponderResult {
  certificatePem: string;
  keyPem: string;
}

/** One SingleResponse: the request's CertID bytes echoed, and the status. */
export interface OcspSingle {
  certIdDer: Uint8Array;
  status: 'good' | 'revoked' | 'unknown';
  /** Epoch ms, for revoked. */
  revokedAt?: number;
  /** RFC 5280 reason code, for revoked (omitted when 0). */
  reasonCode?: number;
  thisUpdate: number;
  nextUpdate: number;
}

/** A BasicOCSPResponse to build and sign with a responder key (ocsp-response.ts). */
export interface OcspSignRequest {
  responderCertPem: string;
  responderKeyPem: string;
  producedAt: number;
  responses: OcspSingle[];
  /** The request's nonce Extension, DER, echoed in responseExtensions. */
  nonceExtension?: Uint8Array;
}

export type CryptoTask =
  | { op: 'verifyCsr'; csr: string | Uint8Array }
  /** csrVerified: set only by CryptoService, for CSR bytes it saw verified (never from a request). */
  | { op: 'signCertificate'; request: SignCertificateRequest; csrVerified?: boolean }
  | { op: 'encodeCrl'; request: CrlRequest }
  | { op: 'issueOcspResponder'; request: OcspResponderRequest }
  | { op: 'signOcspResponse'; request: OcspSignRequest }
  /** Several tasks in one message (crypto-batch.ts); the value is one outcome per task, in order. */
  | { op: 'batch'; tasks: CryptoTask[] };
export type CryptoOutcome<T> = { ok: true; value: T } | { ok: false; code: CryptoErrorCode; message: string };
