import crypto from 'node:crypto';
import type { AuditActor } from '../../audit/audit-log.js';
import { bearerToken } from '../../auth/api-keys.js';
import { ID_PATTERN, newId } from '../../db/ids.js';
import { appError } from '../../errors.js';
import { markAuditResource, type RouteDef } from '../../http/route.js';
import type { KernelServices } from '../../kernel-services.js';
import type { Row } from '../crud.js';
import { createAgent } from './agent-key.js';
import type { AgentRegisterResponse } from './agent-wire.js';
import { agentName, hostFacts, serializeAgent } from './schemas.js';

/** Who the audit trail names for a self-registration: the bootstrap token, not a key. */
const REGISTRATION_ACTOR: AuditActor = { actor: 'agent-bootstrap-token', actor_type: 'system' };

const registerBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    id: { type: 'string', pattern: ID_PATTERN, description: 'Optional readable id; generated when omitted' },
    name: agentName,
    ...hostFacts,
  },
};

/** Constant-time comparison of two secrets of any length (digests have equal length). */
function sameSecret(presented: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(presented).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/**
 * POST /api/v1/agents/register: `certctl agent` creates its own agent record and
 * receives its API key, authorised by CERTCTL_AGENT_BOOTSTRAP_TOKEN. The route is
 * public (there is no key yet) and reads the Authorization header itself; it is
 * rate-limited per client address like every anonymous request. An id that exists
 * is a 409: an agent that lost its key is re-created by an operator, so a leaked
 * bootstrap token cannot take over an existing agent's work.
 */
export function agentRegisterRoute(k: KernelServices): RouteDef {
  return {
    method: 'POST', path: '/api/v1/agents/register', access: 'public', ownAuthorization: true, tag: 'agents', body: registerBody,
    response: { status: 201 },
    summary: 'An agent registers itself with the agent bootstrap token (Authorization: Bearer <token>) and receives its API key, shown once',
    handler: async (ctx, { body }) => {
      const expected = k.config.agentBootstrapToken;
      if (!expected) throw appError('BOOTSTRAP_DISABLED', 'Agent registration is not enabled on this server (CERTCTL_AGENT_BOOTSTRAP_TOKEN is not set)');
      const presented = bearerToken(ctx.get('authorization'));
      if (!presented || !sameSecret(presented, expected)) throw appError('BOOTSTRAP_TOKEN_INVALID', 'Invalid agent bootstrap token');
      const { id: wanted, ...fields } = body as Record<string, unknown> & { id?: string };
      const id = wanted ?? newId('agent');
      markAuditResource(ctx, 'agent', id);
      const { row, key } = await k.db.knex.transaction((trx) => createAgent(trx, k.audit, REGISTRATION_ACTOR, { ...fields, id },
        { withKey: true, action: 'agent_registered', details: { name: fields.name, hostname: fields.hostname ?? '', os: fields.os ?? '', architecture: fields.architecture ?? '', version: fields.version ?? '' } }));
      const out: AgentRegisterResponse & { note: string } = {
        agent: serializeAgent(row as Row) as AgentRegisterResponse['agent'],
        api_key: { id: key!.id, key: key!.key },
        note: 'Store this key now: it is not shown again.',
      };
      return out;
    },
  };
}
