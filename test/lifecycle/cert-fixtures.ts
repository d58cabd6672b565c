import type { Knex } from 'knex';

/**
 * Reference rows the certificate and job tests point at, written straight into
 * the database so these tests do not depend on the other resources' routes.
 */
export async function seedReferences(knex: Knex): Promise<void> {
  await knex('teams').insert([{ id: 'team-a', name: 'Team A' }, { id: 'team-b', name: 'Team B' }]);
  await knex('owners').insert([
    { id: 'owner-a', name: 'Alice', email: 'alice@example.com', team_id: 'team-a' },
    { id: 'owner-b', name: 'Bob', email: 'bob@example.com', team_id: 'team-b' },
    { id: 'owner-c', name: 'Carol', email: '', team_id: null },
  ]);
  await knex('issuers').insert([
    { id: 'iss-local', name: 'Local CA', type: 'local-ca' },
    { id: 'iss-other', name: 'Other CA', type: 'local-ca' },
    { id: 'iss-off', name: 'Disabled CA', type: 'local-ca', enabled: false },
  ]);
  await knex('certificate_profiles').insert([
    { id: 'prof-std', name: 'Standard' },
    { id: 'prof-web', name: 'Web' },
    { id: 'prof-approval', name: 'Needs approval', requires_approval: true },
    { id: 'prof-off', name: 'Disabled profile', enabled: false },
  ]);
  await knex('renewal_policies').insert([
    { id: 'rp-manual', name: 'Manual', renewal_window_days: 10, alert_thresholds_days: JSON.stringify([20, 5]), auto_renew: false },
    { id: 'rp-auto', name: 'Auto 45', renewal_window_days: 45, alert_thresholds_days: JSON.stringify([45, 10, 0]), auto_renew: true },
  ]);
  await knex('agents').insert([{ id: 'agent-1', name: 'web-1' }, { id: 'agent-2', name: 'web-2' }]);
  await knex('targets').insert([
    { id: 'tgt-1', name: 'nginx web-1', type: 'nginx', agent_id: 'agent-1' },
    { id: 'tgt-2', name: 'haproxy web-2', type: 'haproxy', agent_id: 'agent-2' },
  ]);
}

const DAY = 86_400_000;
export const days = (n: number, from = Date.now()) => new Date(from + n * DAY);

let seq = 0;
/** Inserts an already-issued certificate (as the issuance flow would leave it). */
export async function insertIssuedCertificate(knex: Knex, fields: Record<string, unknown> = {}): Promise<string> {
  const id = (fields.id as string | undefined) ?? `mc-fixture-${process.pid}-${++seq}`;
  await knex('managed_certificates').insert({
    id,
    name: id,
    common_name: `${id}.example.com`,
    status: 'Active',
    issuer_id: 'iss-local',
    serial_number: `0${seq.toString(16)}`,
    not_before: days(-60),
    expires_at: days(300),
    ...fields,
  });
  return id;
}

/** Lifecycle audit actions recorded for one resource, oldest first. */
export async function auditActions(knex: Knex, resourceId: string): Promise<string[]> {
  const rows = (await knex('audit_events').where({ resource_id: resourceId, category: 'lifecycle' }).orderBy('seq').select('action')) as { action: string }[];
  return rows.map((r) => r.action);
}

/** Row counts of the tables a failed write must leave untouched. */
export async function writeCounts(knex: Knex): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ['managed_certificates', 'jobs', 'certificate_target_mappings', 'notifications']) {
    const row = (await knex(table).count({ n: '*' }).first()) as { n: number | string };
    out[table] = Number(row.n);
  }
  const lc = (await knex('audit_events').whereNot({ category: 'api' }).count({ n: '*' }).first()) as { n: number | string };
  out.lifecycle_audit = Number(lc.n);
  return out;
}
