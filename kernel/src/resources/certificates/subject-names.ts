import net from 'node:net';
import { appError, type ErrorDetail } from '../../errors.js';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * A DNS name as it may appear in a SAN: LDH labels, an optional leading wildcard
 * label, and a last label that is not all digits (so a mistyped IP address such
 * as 300.1.1.1 is not taken for a name).
 */
export function isDnsName(name: string): boolean {
  if (name.length > 253 || name.endsWith('.')) return false;
  const labels = name.toLowerCase().split('.');
  if (labels[0] === '*') labels.shift();
  return labels.length > 0 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]);
}

function isEmail(value: string): boolean {
  const at = value.lastIndexOf('@');
  if (at < 1 || at > 64) return false;
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  return /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+$/.test(local) && !domain.includes('*') && isDnsName(domain) && domain.includes('.');
}

/**
 * Checks and normalises subject alternative names: DNS names (lower-cased),
 * IPv4/IPv6 addresses and e-mail addresses; duplicates are dropped. Anything else
 * is refused with one detail per bad entry, so the caller sees every problem at once.
 */
export function normaliseSans(sans: string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const details: ErrorDetail[] = [];
  const bad: string[] = [];
  sans.forEach((raw, i) => {
    const value = raw.trim();
    let normal: string | null = null;
    if (net.isIP(value)) normal = value.toLowerCase();
    else if (value.includes('@')) normal = isEmail(value) ? value : null;
    else if (isDnsName(value)) normal = value.toLowerCase();
    if (normal === null) {
      details.push({ path: `/sans/${i}`, message: 'must be a DNS name, an IP address or an e-mail address' });
      bad.push(JSON.stringify(raw));
      return;
    }
    if (!seen.has(normal)) {
      seen.add(normal);
      out.push(normal);
    }
  });
  if (details.length) {
    throw appError('VALIDATION_FAILED', `Invalid subject alternative name(s): ${bad.join(', ')}`, { details });
  }
  return out;
}
