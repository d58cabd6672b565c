import { pooledRandomBytes } from '../crypto/random-pool.js';

/**
 * A certificate serial: 16 random bytes with the top bit cleared (127 bits of
 * entropy, a positive DER INTEGER of at most 16 bytes) and never zero. Random
 * serials need no coordination between replicas; at this size a repeat within one
 * CA is not a practical event (birthday bound around 2^63 certificates).
 */
export function randomSerialHex(): string {
  for (;;) {
    const bytes = pooledRandomBytes(16);
    bytes[0] &= 0x7f;
    const hex = bytes.toString('hex').replace(/^(00)+/, '');
    if (hex) return hex;
  }
}
