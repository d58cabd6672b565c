import type { NotifyResult } from '@certctl/sdk';

/** Non-retryable SMTP client errors: bad credentials, a TLS setup that cannot work, a message the server will never take. */
const PERMANENT_CODES = new Set(['EAUTH', 'ETLS', 'EMESSAGE', 'EENVELOPE', 'ENOAUTH']);

/**
 * The NotifyResult of a nodemailer failure: SMTP 4xx replies (try later) and
 * connection problems are retryable; 5xx replies and permanent client errors
 * are not. The reason keeps nodemailer's code and the server's reply line,
 * which never contain the password.
 */
export function resultOfSmtpError(err: unknown): NotifyResult {
  const e = err as { code?: unknown; responseCode?: unknown; response?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'ESMTP';
  const reply = typeof e?.response === 'string' ? e.response : typeof e?.message === 'string' ? e.message : String(err);
  const reason = `smtp ${code}: ${reply.replace(/\s+/g, ' ').slice(0, 300)}`;
  if (typeof e?.responseCode === 'number') {
    if (e.responseCode >= 400 && e.responseCode < 500) return { status: 'failed', reason, retryable: true };
    if (e.responseCode >= 500) return { status: 'failed', reason, retryable: false };
  }
  return { status: 'failed', reason, retryable: !PERMANENT_CODES.has(code) };
}
