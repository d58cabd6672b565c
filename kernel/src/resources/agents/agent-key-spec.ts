import type { AgentKeyAlgorithm } from './agent-wire.js';

/**
 * The key an agent makes for a CSR work item: the first key type the certificate's
 * profile allows (profiles list them in order of preference), at its smallest
 * allowed size rounded up to a size agents make. No profile, or a profile allowing
 * any key type: ECDSA P-256. Pure, so the work route and its tests share it.
 *
 * RSA sizes are 2048, 3072 or 4096 (the first at or above min_size); a larger
 * min_size is used as given, rounded up to a whole byte (RSA keys that big are
 * slow to make, but the profile asked for them). ECDSA min_size names the curve.
 * Ed25519 is chosen only when the issuer signs certificates for Ed25519 keys (the
 * local CA does; public ACME CAs do not): otherwise the next allowed type is taken,
 * and Ed25519 only when the profile allows nothing else.
 */
export type ProfileKeyRule = { algorithm: string; min_size?: number | null };

const RSA_SIZES = [2048, 3072, 4096];
const EC_CURVES: Record<number, AgentKeyAlgorithm> = { 256: 'ECDSA-P256', 384: 'ECDSA-P384', 521: 'ECDSA-P521' };
export const DEFAULT_AGENT_KEY: AgentKeyAlgorithm = 'ECDSA-P256';

function forRule(rule: ProfileKeyRule): AgentKeyAlgorithm | null {
  const size = rule.min_size ?? 0;
  switch (rule.algorithm) {
    case 'RSA': {
      const bits = RSA_SIZES.find((s) => s >= size) ?? Math.ceil(size / 8) * 8;
      return `RSA-${bits}`;
    }
    case 'ECDSA':
      return EC_CURVES[size || 256] ?? null;
    case 'Ed25519':
      return 'Ed25519';
    default:
      return null;
  }
}

/** Issuer plugins known to sign certificates for Ed25519 keys. */
const ED25519_ISSUERS = new Set(['local-ca']);

/** `allowed` as stored (a jsonb array, or its text when a driver hands back a string). */
export function agentKeyAlgorithm(allowed: ProfileKeyRule[] | string | null | undefined, issuerType?: string | null): AgentKeyAlgorithm {
  const parsed: unknown = typeof allowed === 'string' ? JSON.parse(allowed) : allowed;
  const candidates = (Array.isArray(parsed) ? (parsed as ProfileKeyRule[]) : []).map(forRule).filter((a): a is AgentKeyAlgorithm => a !== null);
  const signable = candidates.filter((a) => a !== 'Ed25519' || ED25519_ISSUERS.has(issuerType ?? ''));
  return signable[0] ?? candidates[0] ?? DEFAULT_AGENT_KEY;
}
