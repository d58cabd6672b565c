import { actorOf } from '../audit/audit-log.js';
import { appError } from '../errors.js';
import { markAuditResource, type RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { buildDigest, digestConfigured, digestRecipients, sendDigest } from './digest-send.js';

const notConfigured = () => appError('DIGEST_NOT_CONFIGURED', 'The digest is off: set CERTCTL_DIGEST_ENABLED=true and configure an e-mail notifier (CERTCTL_SMTP_HOST)');

/**
 * GET /api/v1/digest/preview renders the digest as it would be sent now (HTML by
 * default; text or JSON on request); POST /api/v1/digest/send sends one now, outside
 * the schedule (which it does not move). Both answer 409 digest_not_configured while the digest is
 * off (the replaced system answered 503; here 5xx is kept for kernel faults).
 */
export function digestRoutes(k: KernelServices): RouteDef[] {
  return [
    {
      method: 'GET', path: '/api/v1/digest/preview', access: 'notification.read', tag: 'notifications',
      summary: 'Preview the digest e-mail as it would be sent now',
      query: { format: { description: 'html (default), text, or json (the data and the recipients)', enum: ['html', 'text', 'json'] } },
      response: { contentType: 'text/html', description: 'The digest HTML; 409 digest_not_configured when the digest is off' },
      handler: async (ctx, { query }) => {
        if (!(await digestConfigured(k))) throw notConfigured();
        const digest = await buildDigest(k);
        if (query.format === 'json') return { subject: digest.subject, recipients: await digestRecipients(k), data: digest.data };
        ctx.type = query.format === 'text' ? 'text/plain; charset=utf-8' : 'text/html; charset=utf-8';
        return query.format === 'text' ? digest.text : digest.html;
      },
    },
    {
      method: 'POST', path: '/api/v1/digest/send', access: 'notification.manage', tag: 'notifications',
      summary: 'Send the digest e-mail now',
      response: {
        schema: {
          type: 'object', required: ['status'],
          properties: { status: { type: 'string', enum: ['sent', 'failed'] }, notifier_id: { type: 'string' }, recipients: { type: 'integer' }, reason: { type: 'string' } },
        },
      },
      handler: async (ctx, { principal }) => {
        markAuditResource(ctx, 'digest', 'digest');
        if (!(await digestConfigured(k))) throw notConfigured();
        return sendDigest(k, actorOf(principal), 'api');
      },
    },
  ];
}
