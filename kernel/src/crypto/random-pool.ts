import crypto from 'node:crypto';

/**
 * Random bytes for ids and serials, drawn from a pooled block of the CSPRNG's
 * output rather than one call each: every crypto.randomBytes call costs several
 * microseconds of fixed overhead, and an issuance makes a dozen ids (version,
 * audit events, notifications, jobs) and a serial. The bytes are the same
 * CSPRNG output either way; each is handed out once.
 */
const BLOCK = 4096;
let block = Buffer.alloc(0);
let at = 0;

export function pooledRandomBytes(n: number): Buffer {
  if (n > BLOCK) return crypto.randomBytes(n);
  if (at + n > block.length) {
    block = crypto.randomBytes(BLOCK);
    at = 0;
  }
  const out = Buffer.from(block.subarray(at, at + n));
  // Handed out once: wiped from the block.
  block.fill(0, at, at + n);
  at += n;
  return out;
}
