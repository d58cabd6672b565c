import crypto from 'node:crypto';
import type { Json, NotifyRequest, NotifyResult } from '@certctl/sdk';
import { actorOf } from '../audit/audit-log.js';
import { appError } from '../errors.js';
import { markAuditResource, type RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { PluginCallError } from '../plugins/host/contracts.js';
import { stringList } from './notification-routing.js';
import { NOTIFIER_ROUTING_PROPERTIES } from './notifier-routing-fields.js';

/**
 * POST /api/v1/notifiers/{id}/test: sends one test message through the
 * notifier now, bypassing routing and the queue, so an operator can check a
 * new SMTP account or webhook before relying on it. The answer is the plugin's
 * outcome (sent, or failed with the reason); the attempt is audited.
 */
export function notifierTestRoutes(k: KernelServices): RouteDef[] {
  return [{
    method: 'POST', path: '/api/v1/notifiers/:id/test', access: 'notifier.manage', tag: 'notifiers',
    summary: 'Send a test notification through this notifier now',
    body: {
      type: 'object', additionalProperties: false,
      properties: { recipients: { ...NOTIFIER_ROUTING_PROPERTIES.recipients, description: "Addresses for this test; the notifier's recipients by default" } },
    },
    response: {
      schema: {
        type: 'object', required: ['status'],
        properties: { status: { type: 'string', enum: ['sent', 'failed'] }, reason: { type: 'string' }, retryable: { type: 'boolean' } },
      },
    },
    handler: async (ctx, { params, body, principal }) => {
      markAuditResource(ctx, 'notifier', params.id);
      const knex = k.db.knex;
      const notifier = (await knex('notifiers').where({ id: params.id }).first('id', 'type', 'enabled', 'recipients')) as
        | { id: string; type: string; enabled: boolean; recipients: unknown } | undefined;
      if (!notifier) throw appError('NOT_FOUND', `notifier ${params.id} not found`);
      if (!notifier.enabled) throw appError('CONFLICT', `notifier ${params.id} is disabled`);
      const request: NotifyRequest = {
        notificationId: `test-${crypto.randomBytes(6).toString('hex')}`,
        type: 'ExpirationWarning',
        severity: 'info',
        subject: 'certctl test notification',
        message: `This is a test of notifier ${notifier.id}, sent on request of ${principal.actor}. No certificate is affected.`,
        recipients: stringList(body?.recipients).length ? stringList(body.recipients) : stringList(notifier.recipients),
      };
      let result: NotifyResult;
      try {
        result = (await k.pluginHost.call(notifier.type, notifier.id, 'notify', request as unknown as Json, { timeoutMs: 15_000 })) as unknown as NotifyResult;
      } catch (err) {
        if (!(err instanceof PluginCallError)) throw err;
        result = { status: 'failed', reason: `${err.code}: ${err.message}`, retryable: false };
      }
      await k.audit.append({
        category: 'lifecycle', ...actorOf(principal), action: 'notifier_tested', resource_type: 'notifier', resource_id: notifier.id,
        details: { status: result.status, ...(result.status === 'failed' ? { reason: result.reason.slice(0, 300) } : {}) },
      });
      return result;
    },
  }];
}
