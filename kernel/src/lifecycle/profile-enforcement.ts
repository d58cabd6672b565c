import type { CsrInfo } from '../crypto/crypto-types.js';
import { certificateSans, isEmailName, isSanValue, normaliseName, subjectCommonName } from './issuance-names.js';

/**
 * Checks a verified CSR against the certificate it is for and the profile that
 * certificate uses, before any issuer sees it. Pure: the caller loads the rows.
 *
 * The rules, in the order they are reported:
 * - the profile must be enabled;
 * - the CSR must be valid (its self-signature checks out);
 * - key: RSA of at least 2048 bits, ECDSA on P-256/P-384/P-521, or Ed25519, always;
 *   when the profile lists allowed_key_algorithms, the key's algorithm must be one of
 *   them with at least that entry's min_size (a P-384 key meets an ECDSA 256 minimum);
 * - names: the CSR asks for exactly what the certificate is. Its CN, when present,
 *   is the certificate's common name; its CN and SANs together, as a set, are the
 *   certificate's common name and SANs (so an agent may or may not repeat the CN as a
 *   SAN, but may not add, drop or change a name). The issued certificate carries the
 *   certificate's names (CN first), never names taken from the CSR alone;
 * - SAN rules: with required_san_patterns, every name must match at least one pattern;
 * - EKUs: the issued EKUs are the profile's allowed_ekus (default serverAuth), or the
 *   subset a caller asked for, which must all be allowed. E-mail SANs (S/MIME) need
 *   emailProtection; emailProtection is dropped from a mixed profile's certificate
 *   that has no e-mail SAN;
 * - TTL: max_ttl_seconds caps a requested notAfter (a cap, not a refusal); a requested
 *   notAfter that is not in the future is refused.
 */

export const KEY_ALGORITHM_NAMES = ['RSA', 'ECDSA', 'Ed25519'] as const;
export type KeyAlgorithmName = (typeof KEY_ALGORITHM_NAMES)[number];

export interface ProfileRules {
  id: string;
  name?: string;
  enabled: boolean;
  allowed_key_algorithms: { algorithm: string; min_size?: number }[];
  max_ttl_seconds: number | null;
  allowed_ekus: string[];
  required_san_patterns: string[];
}

export interface CertificateNames {
  common_name: string;
  sans: string[];
}

export interface EnforceOptions {
  now: Date;
  /** The validity the caller asked for; the profile may shorten it. */
  requestedNotAfter?: Date | null;
  /** EKUs the caller asked for (a protocol request); default: what the profile allows. */
  requestedEkus?: string[] | null;
}

export interface IssuancePlan {
  /** The certificate's key as the CSR holds it. */
  keyAlgorithm: string;
  keySize: number | null;
  /** SANs to issue, CN first. */
  sans: string[];
  ekus: string[];
  /** The notAfter to ask the issuer for; null: the issuer decides (within maxTtlSeconds). */
  notAfter: Date | null;
  /** The requested notAfter was past the profile's cap and was shortened. */
  ttlCapped: boolean;
  maxTtlSeconds: number | null;
}

export type ProfileCheck = { ok: true; plan: IssuancePlan } | { ok: false; problems: string[] };

const DEFAULT_EKUS = ['serverAuth'];
const EC_SIZES = new Set([256, 384, 521]);

/** The key algorithm's name as profiles and policies spell it (CsrInfo says EC for ECDSA keys). */
export function keyAlgorithmName(csr: Pick<CsrInfo, 'publicKeyAlgorithm'>): string {
  return csr.publicKeyAlgorithm === 'EC' ? 'ECDSA' : csr.publicKeyAlgorithm;
}

function keyProblems(profile: ProfileRules | null, alg: string, size: number | null): string[] {
  const what = `${alg}${size ? ` ${size}` : ''}`;
  if (alg === 'RSA' && (size ?? 0) < 2048) return [`the CSR's RSA key has ${size ?? 'an unknown number of'} bits; at least 2048 are required`];
  if (alg === 'ECDSA' && !EC_SIZES.has(size ?? 0)) return ['the CSR\'s ECDSA key is not on P-256, P-384 or P-521'];
  if (!(KEY_ALGORITHM_NAMES as readonly string[]).includes(alg)) return [`the CSR's key type ${alg || 'unknown'} is not supported (RSA, ECDSA or Ed25519)`];
  const rules = profile?.allowed_key_algorithms ?? [];
  if (!rules.length) return [];
  const allowed = rules.map((r) => `${r.algorithm}${r.min_size ? ` >= ${r.min_size}` : ''}`).join(', ');
  const rule = rules.find((r) => r.algorithm === alg);
  if (!rule) return [`key type ${alg} is not allowed by profile ${profile!.id} (allowed: ${allowed})`];
  if (rule.min_size && (size ?? 0) < rule.min_size) return [`key ${what} is below profile ${profile!.id}'s minimum of ${rule.min_size} bits for ${alg}`];
  return [];
}

function nameProblems(csr: CsrInfo, cert: CertificateNames, expected: string[]): string[] {
  const cn = subjectCommonName(csr.subject);
  const asked = new Set(csr.sans.map(normaliseName));
  if (cn && isSanValue(cn)) asked.add(normaliseName(cn));
  const problems: string[] = [];
  if (cn && normaliseName(cn) !== normaliseName(cert.common_name)) problems.push(`the CSR's CN ${JSON.stringify(cn)} is not the certificate's common name ${JSON.stringify(cert.common_name)}`);
  if (!cn && !csr.sans.length) problems.push('the CSR names nothing (no CN, no SANs)');
  // `expected` leaves out a common name that cannot be a SAN (free text): the CN rule alone
  // matches it, and a CSR repeating it as a SAN asks for nothing more (it is not issued as one).
  const want = new Set(expected);
  const extra = [...asked].filter((n) => !want.has(n) && n !== normaliseName(cert.common_name));
  const missing = [...want].filter((n) => !asked.has(n));
  if (extra.length) problems.push(`the CSR asks for names the certificate does not have: ${extra.join(', ')}`);
  if (missing.length) problems.push(`the CSR leaves out names of the certificate: ${missing.join(', ')}`);
  return problems;
}

function patternProblems(profile: ProfileRules | null, names: string[]): string[] {
  const patterns = profile?.required_san_patterns ?? [];
  if (!patterns.length) return [];
  const res = patterns.map((p) => new RegExp(p, 'u'));
  const bad = names.filter((n) => !res.some((re) => re.test(n)));
  return bad.length ? [`name(s) ${bad.join(', ')} match none of profile ${profile!.id}'s required SAN patterns`] : [];
}

function ekuPlan(profile: ProfileRules | null, sans: string[], requested: string[] | null | undefined): { ekus: string[]; problems: string[] } {
  const hasEmail = sans.some(isEmailName);
  const allowed = profile ? (profile.allowed_ekus?.length ? profile.allowed_ekus : DEFAULT_EKUS) : [...DEFAULT_EKUS, ...(hasEmail ? ['emailProtection'] : [])];
  const problems: string[] = [];
  let ekus: string[];
  if (requested?.length) {
    const refused = requested.filter((e) => !allowed.includes(e));
    if (refused.length) problems.push(`EKU ${refused.join(', ')} is not allowed${profile ? ` by profile ${profile.id}` : ''} (allowed: ${allowed.join(', ')})`);
    ekus = requested.filter((e) => allowed.includes(e));
  } else {
    ekus = hasEmail || allowed.length === 1 ? [...allowed] : allowed.filter((e) => e !== 'emailProtection');
  }
  if (hasEmail && !ekus.includes('emailProtection')) {
    problems.push(`e-mail SANs need the emailProtection EKU, which ${profile ? `profile ${profile.id} does not allow` : 'was not requested'}`);
  }
  return { ekus, problems };
}

export function enforceProfile(profile: ProfileRules | null, csr: CsrInfo, cert: CertificateNames, opts: EnforceOptions): ProfileCheck {
  if (profile && !profile.enabled) return { ok: false, problems: [`profile ${profile.id} is disabled`] };
  if (!csr.valid) return { ok: false, problems: [`the CSR is not valid: ${csr.reason ?? 'unknown reason'}`] };
  const alg = keyAlgorithmName(csr);
  const sans = certificateSans(cert);
  const eku = ekuPlan(profile, sans, opts.requestedEkus);
  const problems = [
    ...keyProblems(profile, alg, csr.keySize),
    ...nameProblems(csr, cert, sans),
    ...patternProblems(profile, sans.length ? sans : [normaliseName(cert.common_name)]),
    ...eku.problems,
  ];
  const maxTtl = profile?.max_ttl_seconds ?? null;
  let notAfter = opts.requestedNotAfter ?? null;
  let ttlCapped = false;
  if (notAfter && notAfter.getTime() <= opts.now.getTime()) problems.push(`the requested notAfter ${notAfter.toISOString()} is not in the future`);
  if (notAfter && maxTtl !== null) {
    const cap = new Date(opts.now.getTime() + maxTtl * 1000);
    if (notAfter > cap) {
      notAfter = cap;
      ttlCapped = true;
    }
  }
  if (problems.length) return { ok: false, problems };
  return { ok: true, plan: { keyAlgorithm: alg, keySize: csr.keySize, sans, ekus: eku.ekus, notAfter, ttlCapped, maxTtlSeconds: maxTtl } };
}
