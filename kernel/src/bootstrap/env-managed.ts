import { appError } from '../errors.js';

/**
 * The fields of a notifier or protocol endpoint that the environment owns when the
 * row is env-managed (migration 018): everything the variables set. A notifier's
 * routing (event_types, min_severity, recipients, renewal_policy_ids) is not set by
 * any variable, so operators keep editing it through the API.
 */
const ENV_OWNED_FIELDS = ['name', 'config', 'enabled'];

/**
 * Refuses an API change of an env-managed row with 409 ENV_MANAGED: a delete
 * (body undefined), or an update touching a field the variables own. Otherwise the
 * next restart would silently undo the operator's edit. A row the start-up disabled
 * (its variable was unset) may be deleted: nothing recreates it unless the variable
 * comes back.
 */
export function refuseEnvManagedChange(row: Record<string, unknown>, body?: Record<string, unknown>): void {
  if (row.managed_by !== 'env') return;
  const id = String(row.id);
  if (body === undefined && row.enabled === false) return;
  if (body === undefined) throw appError('ENV_MANAGED', `${id} is managed by environment variables: unset them and restart to disable it`);
  const owned = ENV_OWNED_FIELDS.filter((f) => body[f] !== undefined);
  if (owned.length) throw appError('ENV_MANAGED', `${id} is managed by environment variables: ${owned.join(', ')} cannot be changed through the API (see docs/operations.md)`);
}
