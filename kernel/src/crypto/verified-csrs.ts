import crypto from 'node:crypto';

/**
 * The CSRs this kernel saw pass their signature check, by a SHA-256 of their
 * exact bytes (PEM text or DER as given). An issuance verifies its CSR first and
 * signs it moments later; the signing task is told the check was done, so the
 * pool does not verify the same bytes twice. Only CryptoService reads and writes
 * this, from results the pool produced: no caller can claim a CSR was verified.
 * Bounded: the oldest entries go first (a miss only costs a second check).
 */
export class VerifiedCsrs {
  private readonly seen = new Set<string>();

  constructor(private readonly max = 4096) {}

  static digest(csr: string | Uint8Array): string {
    return crypto.createHash('sha256').update(csr).digest('base64');
  }

  add(digest: string): void {
    if (this.seen.has(digest)) return;
    this.seen.add(digest);
    // A Set iterates in insertion order: the first value is the oldest.
    if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value!);
  }

  has(digest: string): boolean {
    return this.seen.has(digest);
  }
}
