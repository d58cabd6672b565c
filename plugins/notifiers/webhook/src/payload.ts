import { createHmac } from 'node:crypto';
import type { NotifyRequest } from '@certctl/sdk';

/** The JSON body receivers get. `timestamp` (Unix seconds) is inside the signed body, so it cannot be replayed with a new time. */
export function webhookBody(req: NotifyRequest, nowMs: number): Record<string, unknown> {
  return {
    id: req.notificationId,
    type: req.type,
    severity: req.severity,
    subject: req.subject,
    message: req.message,
    recipients: req.recipients,
    certificate: req.certificate
      ? { id: req.certificate.id, common_name: req.certificate.commonName, status: req.certificate.status, expires_at: req.certificate.expiresAt }
      : null,
    timestamp: Math.floor(nowMs / 1000),
  };
}

/** `sha256=` and the hex HMAC-SHA256 of the exact bytes sent, keyed with the shared secret. */
export const signBody = (secret: string, rawBody: string): string => `sha256=${createHmac('sha256', secret).update(rawBody, 'utf8').digest('hex')}`;
