import type { Knex } from 'knex';
import { newId } from '../db/ids.js';
import type { NotificationEvent, NotificationSeverity } from '../notifications/notification-events.js';

/**
 * The policy engine: the operator's organisation-wide rules (table `policies`),
 * checked against every certificate about to be issued. Unlike a profile, which
 * a certificate opts into, an enabled policy applies to every certificate (or,
 * with agent_group_id, to those whose agent or target agents are in the group).
 *
 * A violation is recorded in policy_violations (one open row per policy and
 * certificate); Error and Critical violations block the issuance, Info and
 * Warning are recorded only. A later issuance that passes a policy resolves the
 * certificate's open violation of it.
 */

export type PolicySeverity = 'Info' | 'Warning' | 'Error' | 'Critical';

export interface PolicyRow {
  id: string;
  name: string;
  type: 'key_algorithm' | 'min_key_size' | 'max_lifetime' | 'san_pattern' | 'issuer_restriction';
  config: Record<string, unknown>;
  severity: PolicySeverity;
  enabled: boolean;
  agent_group_id: string | null;
}

/** What a policy is checked against: the certificate about to be (or just) issued. */
export interface PolicySubject {
  issuerId: string | null;
  /** RSA, ECDSA, Ed25519 (profile-enforcement's keyAlgorithmName). */
  keyAlgorithm: string;
  keySize: number | null;
  /** Every name the certificate carries (CN and SANs). */
  names: string[];
  notBefore: Date;
  /** Null when the issuer decides: lifetime rules are then checked on the issued certificate. */
  notAfter: Date | null;
}

export interface PolicyViolation {
  policy: PolicyRow;
  severity: PolicySeverity;
  message: string;
}

export interface PolicyEvaluation {
  violations: PolicyViolation[];
  /** Policies that were checked and passed. */
  passed: PolicyRow[];
}

const DAY_MS = 86_400_000;
const LIFETIME_SLACK_DAYS = 5 / 1440;

export const isBlocking = (severity: PolicySeverity): boolean => severity === 'Error' || severity === 'Critical';

const NOTIFY_SEVERITY: Record<PolicySeverity, NotificationSeverity> = { Info: 'info', Warning: 'warning', Error: 'critical', Critical: 'critical' };

/** The rule itself: a message when the subject breaks it, null when it passes, undefined when it cannot be checked yet. */
function check(policy: PolicyRow, s: PolicySubject): string | null | undefined {
  const c = policy.config ?? {};
  switch (policy.type) {
    case 'key_algorithm': {
      const allowed = (c.allowed_algorithms as string[] | undefined) ?? [];
      return allowed.includes(s.keyAlgorithm) ? null : `key algorithm ${s.keyAlgorithm} is not one of ${allowed.join(', ')}`;
    }
    case 'min_key_size': {
      const min = s.keyAlgorithm === 'RSA' ? (c.rsa_min_bits as number | undefined) : s.keyAlgorithm === 'ECDSA' ? (c.ecdsa_min_bits as number | undefined) : undefined;
      if (min === undefined) return null;
      return (s.keySize ?? 0) >= min ? null : `${s.keyAlgorithm} key of ${s.keySize ?? 'unknown'} bits is below the minimum of ${min}`;
    }
    case 'max_lifetime': {
      if (!s.notAfter) return undefined;
      const maxDays = Number(c.max_days);
      const days = (s.notAfter.getTime() - s.notBefore.getTime()) / DAY_MS;
      // Five minutes of slack: issuers backdate notBefore for clock skew, which is not lifetime.
      return days <= maxDays + LIFETIME_SLACK_DAYS ? null : `lifetime of ${Math.ceil(days * 10) / 10} days exceeds the maximum of ${maxDays} days`;
    }
    case 'san_pattern': {
      const res = ((c.patterns as string[] | undefined) ?? []).map((p) => new RegExp(p, 'u'));
      const bad = s.names.filter((n) => !res.some((re) => re.test(n)));
      return bad.length ? `name(s) ${bad.join(', ')} match none of the allowed patterns` : null;
    }
    case 'issuer_restriction': {
      const allowed = (c.allowed_issuer_ids as string[] | undefined) ?? [];
      return s.issuerId && allowed.includes(s.issuerId) ? null : `issuer ${s.issuerId ?? '(none)'} is not one of ${allowed.join(', ')}`;
    }
    default:
      return undefined;
  }
}

/** Checks every policy; pure. */
export function evaluatePolicies(policies: readonly PolicyRow[], subject: PolicySubject): PolicyEvaluation {
  const out: PolicyEvaluation = { violations: [], passed: [] };
  for (const p of policies) {
    if (!p.enabled) continue;
    const problem = check(p, subject);
    if (problem === undefined) continue;
    if (problem === null) out.passed.push(p);
    else out.violations.push({ policy: p, severity: p.severity, message: `Policy ${p.name} (${p.type}): ${problem}` });
  }
  return out;
}

/** The shortest max_lifetime (days) among these policies: an issuance that may choose its validity asks for no more. */
export function lifetimeLimitDays(policies: readonly PolicyRow[]): number | null {
  const days = policies.filter((p) => p.enabled && p.type === 'max_lifetime').map((p) => Number(p.config?.max_days)).filter((d) => d > 0);
  return days.length ? Math.min(...days) : null;
}

/**
 * The enabled policies that apply to a certificate: unscoped ones, and those of
 * an enabled agent group that includes its agent or the agent of one of its targets.
 * The issuance context reads them inside its own statement (issuance-context.ts).
 * Its fixed values are written as SQL, not bound: with the certificate id as its only parameter,
 * PostgreSQL can settle on one plan for the named statement instead of planning each execution.
 */
/** `certificateId`: the outer query's certificate id column (a correlated subquery, issuance-context.ts). */
export const applicablePoliciesQuery = (db: Knex | Knex.Transaction, certificateId: Knex.Raw): Knex.QueryBuilder => db('policies as p').whereRaw('p.enabled').where((w) => {
  w.whereNull('p.agent_group_id').orWhereExists((q) => {
    q.select(db.raw('1')).from('agent_group_members as m').join('agent_groups as g', 'g.id', 'm.agent_group_id')
      .whereRaw('m.agent_group_id = p.agent_group_id').whereRaw('g.enabled').whereRaw('m.membership_type = \'include\'')
      .whereIn('m.agent_id', (a) => {
        a.select('agent_id').from('managed_certificates').where('id', certificateId).whereNotNull('agent_id')
          .union((u) => { u.select('t.agent_id').from('certificate_target_mappings as ctm').join('targets as t', 't.id', 'ctm.target_id').where('ctm.certificate_id', certificateId).whereNotNull('t.agent_id'); });
      });
  });
}).orderBy('p.id').select('p.*');

export interface RecordedViolations {
  /** Per certificate: ids of the violation rows this evaluation opened (already-open ones are not repeated). */
  opened: Map<string, string[]>;
  /** PolicyViolation notification events for the new rows: the caller records them with its others. */
  events: NotificationEvent[];
}

type OpenRow = { certificate_id: string; policy_id: string };

export interface PolicyOutcome {
  certificateId: string;
  evaluation: PolicyEvaluation;
  commonName?: string;
}

/**
 * Writes evaluations in the caller's transaction, with at most three statements
 * for any number of certificates: a row per violation not already open (one open
 * row per policy and certificate), and resolved_at on the open rows of policies
 * that now pass (when `resolvePassed`: only once the passing certificate is stored).
 */
export async function recordPolicyOutcomes(
  trx: Knex.Transaction,
  outcomes: readonly PolicyOutcome[],
  opts: { now: Date; resolvePassed: boolean; refused?: boolean },
): Promise<RecordedViolations> {
  const out: RecordedViolations = { opened: new Map(), events: [] };
  const passed = opts.resolvePassed ? outcomes.flatMap((o) => o.evaluation.passed.map((p) => [o.certificateId, p.id] as const)) : [];
  if (passed.length) {
    await trx.raw(
      `UPDATE policy_violations pv SET resolved_at = ? FROM unnest(?::text[], ?::text[]) AS v(cert, pol)
        WHERE pv.certificate_id = v.cert AND pv.policy_id = v.pol AND pv.resolved_at IS NULL`,
      [opts.now, passed.map((x) => x[0]), passed.map((x) => x[1])],
    );
  }
  const found = outcomes.flatMap((o) => o.evaluation.violations.map((v) => ({ o, v })));
  if (!found.length) return out;
  const res = (await trx.raw(
    `SELECT pv.certificate_id, pv.policy_id FROM policy_violations pv JOIN unnest(?::text[], ?::text[]) AS v(cert, pol)
        ON pv.certificate_id = v.cert AND pv.policy_id = v.pol WHERE pv.resolved_at IS NULL`,
    [found.map((f) => f.o.certificateId), found.map((f) => f.v.policy.id)],
  )) as { rows?: OpenRow[] } | OpenRow[];
  const open = new Set(((res as { rows?: OpenRow[] }).rows ?? (res as OpenRow[])).map((r) => `${r.certificate_id}/${r.policy_id}`));
  const fresh = found.filter((f) => !open.has(`${f.o.certificateId}/${f.v.policy.id}`));
  if (!fresh.length) return out;
  const rows = fresh.map(({ o, v }) => ({ id: newId('violation'), policy_id: v.policy.id, certificate_id: o.certificateId, severity: v.severity, message: v.message.slice(0, 2000), created_at: opts.now }));
  await trx('policy_violations').insert(rows);
  rows.forEach((r) => out.opened.set(r.certificate_id, [...(out.opened.get(r.certificate_id) ?? []), r.id]));
  out.events = fresh.map(({ o, v }, i) => ({
    type: 'PolicyViolation' as const,
    certificate_id: o.certificateId,
    severity: NOTIFY_SEVERITY[v.severity],
    subject: `${v.severity} policy violation: ${o.commonName ?? o.certificateId}`,
    message: `${v.message}${opts.refused && isBlocking(v.severity) ? ' The issuance was refused.' : ''} (certificate ${o.certificateId})`,
    dedupe_key: `policy-violation:${rows[i].id}`,
  }));
  return out;
}
