import type { CaEnsureRequest, CaKeyAlgorithm, CaSignRequest } from '@certctl/sdk';
import { EXTENDED_KEY_USAGES, KEY_USAGES } from '../crypto/crypto-types.js';

/**
 * Reading ctx.ca requests. They come from plugin code (possibly third-party), so
 * they are checked field by field against the contract and rebuilt from known
 * fields only: no unknown member, wrong type or oversized value gets through.
 */

export const CA_KEY_ALGORITHMS: readonly CaKeyAlgorithm[] = ['ECDSA-P256', 'ECDSA-P384', 'RSA-2048', 'RSA-3072', 'RSA-4096'];
/** Key usages a leaf may carry; keyCertSign and cRLSign would make it a CA in all but name. */
export const LEAF_KEY_USAGES = KEY_USAGES.filter((u) => u !== 'keyCertSign' && u !== 'cRLSign');

const MAX_CSR_CHARS = 64 * 1024;
const MAX_NAME_CHARS = 1024;
const MAX_SANS = 1000;
const MAX_EKUS = 20;
const OID = /^[0-2](\.(0|[1-9]\d{0,9})){1,30}$/;

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const fail = <T>(problem: string): Parsed<T> => ({ ok: false, problem });

function unknownField(v: Record<string, unknown>, allowed: readonly string[], what: string): string | null {
  const extra = Object.keys(v).filter((k) => !allowed.includes(k));
  return extra.length ? `${what}: unknown field ${JSON.stringify(extra[0].slice(0, 40))}` : null;
}

const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max && !v.includes('\0');
const isDate = (v: unknown): v is string => typeof v === 'string' && v.length <= 64 && /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v));

export function parseEnsureRequest(v: unknown): Parsed<CaEnsureRequest> {
  if (!isRecord(v)) return fail('ca.ensure: the request must be an object');
  if (v.source === 'configured') {
    const extra = unknownField(v, ['source'], 'ca.ensure');
    return extra ? fail(extra) : { ok: true, value: { source: 'configured' } };
  }
  if (v.source !== 'generate') return fail('ca.ensure: source must be "generate" or "configured"');
  const extra = unknownField(v, ['source', 'subject', 'keyAlgorithm', 'validityDays', 'pathLength'], 'ca.ensure');
  if (extra) return fail(extra);
  if (!isText(v.subject, MAX_NAME_CHARS)) return fail(`ca.ensure: subject must be a distinguished name of 1 to ${MAX_NAME_CHARS} characters`);
  if (!CA_KEY_ALGORITHMS.includes(v.keyAlgorithm as CaKeyAlgorithm)) return fail(`ca.ensure: keyAlgorithm must be one of ${CA_KEY_ALGORITHMS.join(', ')}`);
  if (!Number.isInteger(v.validityDays) || (v.validityDays as number) < 1 || (v.validityDays as number) > 36_500) return fail('ca.ensure: validityDays must be a whole number from 1 to 36500');
  if (v.pathLength !== undefined && (!Number.isInteger(v.pathLength) || (v.pathLength as number) < 0 || (v.pathLength as number) > 10)) return fail('ca.ensure: pathLength must be a whole number from 0 to 10');
  return {
    ok: true,
    value: { source: 'generate', subject: v.subject, keyAlgorithm: v.keyAlgorithm as CaKeyAlgorithm, validityDays: v.validityDays as number, ...(v.pathLength !== undefined ? { pathLength: v.pathLength as number } : {}) },
  };
}

function stringList(v: unknown, what: string, max: number, check: (s: string) => boolean, hint: string): Parsed<string[]> {
  if (!Array.isArray(v) || v.length > max) return fail(`ca.sign: ${what} must be an array of at most ${max} strings`);
  for (const s of v) if (!isText(s, MAX_NAME_CHARS) || !check(s)) return fail(`ca.sign: ${what} has an invalid entry ${JSON.stringify(String(s).slice(0, 60))} (${hint})`);
  return { ok: true, value: [...new Set(v as string[])] };
}

export function parseSignRequest(v: unknown): Parsed<CaSignRequest> {
  if (!isRecord(v)) return fail('ca.sign: the request must be an object');
  const extra = unknownField(v, ['csrPem', 'notAfter', 'notBefore', 'subject', 'sans', 'extendedKeyUsage', 'keyUsage'], 'ca.sign');
  if (extra) return fail(extra);
  if (!isText(v.csrPem, MAX_CSR_CHARS) || !v.csrPem.includes('-----BEGIN')) return fail('ca.sign: csrPem must be a PEM certificate request');
  if (!isDate(v.notAfter)) return fail('ca.sign: notAfter must be an ISO 8601 date-time');
  if (v.notBefore !== undefined && !isDate(v.notBefore)) return fail('ca.sign: notBefore must be an ISO 8601 date-time');
  if (v.subject !== undefined && !isText(v.subject, MAX_NAME_CHARS)) return fail(`ca.sign: subject must be a distinguished name of 1 to ${MAX_NAME_CHARS} characters`);
  const out: CaSignRequest = { csrPem: v.csrPem, notAfter: v.notAfter };
  if (v.notBefore !== undefined) out.notBefore = v.notBefore as string;
  if (v.subject !== undefined) out.subject = v.subject as string;
  if (v.sans !== undefined) {
    const sans = stringList(v.sans, 'sans', MAX_SANS, (s) => !/[\s,]/.test(s), 'no spaces or commas');
    if (!sans.ok) return sans;
    out.sans = sans.value;
  }
  if (v.extendedKeyUsage !== undefined) {
    const ekus = stringList(v.extendedKeyUsage, 'extendedKeyUsage', MAX_EKUS, (s) => Object.hasOwn(EXTENDED_KEY_USAGES, s) || OID.test(s), `${Object.keys(EXTENDED_KEY_USAGES).join(', ')} or a dotted OID`);
    if (!ekus.ok) return ekus;
    out.extendedKeyUsage = ekus.value;
  }
  if (v.keyUsage !== undefined) {
    const usages = stringList(v.keyUsage, 'keyUsage', LEAF_KEY_USAGES.length, (s) => (LEAF_KEY_USAGES as readonly string[]).includes(s), `one of ${LEAF_KEY_USAGES.join(', ')}`);
    if (!usages.ok) return usages;
    if (!usages.value.length) return fail('ca.sign: keyUsage must not be empty (leave it out for the adaptive default)');
    out.keyUsage = usages.value;
  }
  return { ok: true, value: out };
}
