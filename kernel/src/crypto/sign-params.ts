import { CryptoError } from './crypto-types.js';

/** Request checks shared by the template and library signing paths, so both refuse alike. */

const HEX = /^[0-9a-f]+$/i;
export function normalizeSerial(hex: string): string {
  const h = String(hex ?? '').replace(/:/g, '').toLowerCase();
  if (!HEX.test(h) || h.length > 40) throw new CryptoError('bad_request', 'serialNumberHex must be 1 to 20 bytes of hex');
  const trimmed = h.replace(/^0+/, '') || '';
  if (!trimmed) throw new CryptoError('bad_request', 'serialNumberHex must not be zero');
  const even = trimmed.length % 2 ? `0${trimmed}` : trimmed;
  // DER INTEGER is signed: a set top bit needs a leading zero byte to stay positive.
  const positive = parseInt(even[0], 16) >= 8 ? `00${even}` : even;
  if (positive.length > 42) throw new CryptoError('bad_request', 'serialNumberHex must be at most 20 bytes once encoded');
  return positive;
}

export function parseDate(value: string, what: string): Date {
  const d = new Date(value);
  if (typeof value !== 'string' || Number.isNaN(d.getTime())) throw new CryptoError('bad_request', `${what} must be an ISO 8601 date`);
  return d;
}

