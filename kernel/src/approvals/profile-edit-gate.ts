import type { Knex } from 'knex';
import type { ValidateFunction } from 'ajv';
import { actorOf, type AuditActor } from '../audit/audit-log.js';
import type { Principal } from '../auth/principal.js';
import { appError } from '../errors.js';
import type { RouteDef } from '../http/route.js';
import { markAuditResource } from '../http/route.js';
import { ajv, assertValid } from '../http/validation.js';
import type { KernelServices } from '../kernel-services.js';
import { loadRow, toDbRow, updateBodySchema, type Row } from '../resources/crud.js';
import { checkProfileWrite, profileSpec } from '../resources/profiles/routes.js';
import { newApprovalId, type ApprovalRow } from './approval-model.js';

/*
 * The profile-edit gate. Profiles with requires_approval gate issuance behind a second
 * person; if one person could edit that flag (or anything else on such a profile)
 * alone, they could switch the gate off, issue, and switch it back on. So an edit that
 * touches an approval-tier profile, or makes one, is not applied: it is stored as a
 * profile_edit approval request and applied, exactly as proposed and checked again,
 * only when someone other than the proposer approves it.
 */

let validator: ValidateFunction | undefined;
// Compiled on first use: profiles/routes.ts imports this module, so the spec is not there yet at load time.
const validateChange = () => (validator ??= ajv.compile(updateBodySchema(profileSpec)));

/** Every direction through an approval-tier profile: on->on, on->off, and off->on. */
export const editNeedsApproval = (existing: Row, change: Record<string, unknown>): boolean =>
  existing.requires_approval === true || change.requires_approval === true;

async function checkChange(trx: Knex.Transaction, profileId: string, change: Record<string, unknown>): Promise<Record<string, unknown>> {
  const data = checkProfileWrite({ ...change });
  if (typeof data.name === 'string' && (await trx('certificate_profiles').where({ name: data.name }).whereNot({ id: profileId }).first('id'))) {
    throw appError('CONFLICT', `A profile named ${data.name} already exists`);
  }
  return data;
}

/** Writes a checked change to a locked profile, with its audit event. */
async function writeProfile(k: Pick<KernelServices, 'audit'>, trx: Knex.Transaction, id: string, data: Record<string, unknown>, actor: AuditActor, details: Record<string, unknown> = {}): Promise<Row> {
  const [updated] = (await trx('certificate_profiles').where({ id }).update({ ...toDbRow(profileSpec, data), updated_at: trx.fn.now() }).returning('*')) as Row[];
  await k.audit.append({ category: 'lifecycle', ...actor, action: 'profile_updated', resource_type: 'profile', resource_id: id, details: { fields: Object.keys(data), ...details } }, trx);
  return updated;
}

/**
 * Applies an approved profile_edit request in the approver's transaction: the stored
 * change is validated again (schema and profile rules; the name may have been taken
 * since), then written. A change that no longer passes throws and leaves everything,
 * the request included, as it was.
 */
export async function applyApprovedProfileEdit(k: Pick<KernelServices, 'audit'>, trx: Knex.Transaction, request: ApprovalRow, approver: AuditActor): Promise<Row> {
  const profileId = request.profile_id!;
  const change = assertValid<Record<string, unknown>>(validateChange(), structuredClone(request.proposed_change ?? {}), 'The proposed change');
  await loadRow(trx, 'certificate_profiles', 'profile', profileId, { lock: true });
  const data = await checkChange(trx, profileId, change);
  return writeProfile(k, trx, profileId, data, approver, { approval_id: request.id, requested_by: request.requested_by });
}

async function proposeEdit(k: KernelServices, trx: Knex.Transaction, profileId: string, change: Record<string, unknown>, actor: AuditActor): Promise<ApprovalRow> {
  const [request] = (await trx('approval_requests').insert({
    id: newApprovalId(), kind: 'profile_edit', profile_id: profileId, proposed_change: JSON.stringify(change), requested_by: actor.actor,
    expires_at: new Date(Date.now() + k.config.approvalTimeoutMs),
  }).returning('*')) as ApprovalRow[];
  await k.audit.append({
    category: 'lifecycle', ...actor, action: 'approval_requested', resource_type: 'approval', resource_id: request.id,
    details: { kind: 'profile_edit', profile_id: profileId, fields: Object.keys(change), expires_at: request.expires_at },
  }, trx);
  return request;
}

/**
 * PUT /api/v1/profiles/:id with the gate: an ungated edit is applied at once (200, the
 * profile); a gated one is stored (202, the pending request's id). The decision and the
 * write share one transaction holding the profile's row, so a concurrent approved edit
 * that turns the flag on cannot slip an ungated edit through.
 */
export function gatedProfileUpdateRoute(k: KernelServices): RouteDef {
  const table = 'certificate_profiles';
  return {
    method: 'PUT', path: `${profileSpec.basePath}/:id`, access: profileSpec.permissions.update, tag: profileSpec.tag,
    summary: 'Update a profile (fields not given are kept); an edit touching an approval-tier profile answers 202 with a pending approval request',
    body: updateBodySchema(profileSpec),
    response: { description: '200 with the profile, or 202 {approval_id, status: "pending"} when the edit awaits a second person' },
    handler: async (ctx, { params, body, principal }: { params: Record<string, string>; body: Record<string, unknown>; principal: Principal }) => {
      markAuditResource(ctx, 'profile', params.id);
      const actor = actorOf(principal);
      const out = await k.db.knex.transaction(async (trx) => {
        const existing = await loadRow(trx, table, 'profile', params.id, { lock: true });
        profileSpec.authorizeWrite?.(principal, 'update', existing);
        const data = await checkChange(trx, params.id, body);
        if (editNeedsApproval(existing, data)) return { pending: await proposeEdit(k, trx, params.id, body, actor) };
        return { applied: await writeProfile(k, trx, params.id, data, actor) };
      });
      if (out.pending) {
        ctx.status = 202;
        ctx.body = { approval_id: out.pending.id, pending_approval_id: out.pending.id, status: out.pending.status, expires_at: out.pending.expires_at };
        return undefined;
      }
      return out.applied;
    },
  };
}
