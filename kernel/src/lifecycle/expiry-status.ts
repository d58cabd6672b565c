/** Renewal window used when a certificate has no renewal policy. */
export const DEFAULT_RENEWAL_WINDOW_DAYS = 30;
/** Alert thresholds used when a certificate has no renewal policy. */
export const DEFAULT_ALERT_THRESHOLDS_DAYS = [30, 14, 7, 0];

const DAY_MS = 86_400_000;

/**
 * The status an issued certificate has from its expiry alone: Expired past
 * expires_at, Expiring inside the renewal window, else Active.
 */
export function statusFromExpiry(expiresAt: Date, windowDays: number, now: Date): 'Active' | 'Expiring' | 'Expired' {
  const left = expiresAt.getTime() - now.getTime();
  if (left <= 0) return 'Expired';
  if (left <= windowDays * DAY_MS) return 'Expiring';
  return 'Active';
}
