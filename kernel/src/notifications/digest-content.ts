import { rowsOf } from '../db/raw-rows.js';
import type { KernelServices } from '../kernel-services.js';

/*
 * What the digest e-mail says: certificate counts, agents, the jobs of the last
 * period, and the certificates expiring within EXPIRING_WINDOW_DAYS, soonest first.
 * Gathered in a few aggregate queries, rendered as HTML (inline styles: mail clients
 * drop <style> blocks unevenly) and as plain text with the same content.
 */

export const EXPIRING_WINDOW_DAYS = 30;
const EXPIRING_LIMIT = 50;
const FAILED_JOBS_LIMIT = 10;
const DAY_MS = 86_400_000;

export interface DigestData {
  generated_at: string;
  period_hours: number;
  certificates: { total: number; active: number; expiring: number; expired: number; revoked: number; failed: number };
  agents: { total: number; online: number };
  jobs: { by_status: Record<string, number>; failed: { id: string; type: string; certificate_id: string | null; last_error: string | null }[] };
  expiring: { id: string; name: string; common_name: string; status: string; expires_at: string; days_left: number }[];
}

const num = (v: unknown): number => Number(v ?? 0);
const iso = (v: unknown): string => new Date(v as string).toISOString();

export async function gatherDigest(k: KernelServices, periodMs: number, now = new Date()): Promise<DigestData> {
  const knex = k.db.knex;
  const soon = new Date(now.getTime() + EXPIRING_WINDOW_DAYS * DAY_MS);
  const since = new Date(now.getTime() - periodMs);
  const [certs] = rowsOf<Record<string, unknown>>(await knex.raw(
    `SELECT count(*) AS total,
            count(*) FILTER (WHERE status = 'Active') AS active,
            count(*) FILTER (WHERE status NOT IN ('Revoked', 'Expired') AND expires_at > ? AND expires_at <= ?) AS expiring,
            count(*) FILTER (WHERE status = 'Expired' OR (status <> 'Revoked' AND expires_at <= ?)) AS expired,
            count(*) FILTER (WHERE status = 'Revoked') AS revoked,
            count(*) FILTER (WHERE status = 'Failed') AS failed
       FROM managed_certificates WHERE status <> 'Archived'`,
    [now, soon, now],
  ));
  const [agents] = rowsOf<Record<string, unknown>>(await knex.raw(`SELECT count(*) AS total, count(*) FILTER (WHERE status = 'Online') AS online FROM agents`));
  const jobCounts = (await knex('jobs').where('updated_at', '>', since).groupBy('status').select('status').count({ n: '*' })) as { status: string; n: unknown }[];
  const failed = (await knex('jobs').where({ status: 'Failed' }).where('updated_at', '>', since).orderBy('updated_at', 'desc').limit(FAILED_JOBS_LIMIT)
    .select('id', 'type', 'certificate_id', 'last_error')) as DigestData['jobs']['failed'];
  const expiring = (await knex('managed_certificates').whereNotIn('status', ['Archived', 'Revoked']).whereNotNull('expires_at').where('expires_at', '<=', soon)
    .orderBy('expires_at', 'asc').limit(EXPIRING_LIMIT).select('id', 'name', 'common_name', 'status', 'expires_at')) as { id: string; name: string; common_name: string; status: string; expires_at: unknown }[];
  return {
    generated_at: now.toISOString(),
    period_hours: Math.round((periodMs / 3_600_000) * 10) / 10,
    certificates: { total: num(certs.total), active: num(certs.active), expiring: num(certs.expiring), expired: num(certs.expired), revoked: num(certs.revoked), failed: num(certs.failed) },
    agents: { total: num(agents.total), online: num(agents.online) },
    jobs: { by_status: Object.fromEntries(jobCounts.map((j) => [j.status, num(j.n)])), failed: failed.map((j) => ({ ...j, last_error: j.last_error ? j.last_error.slice(0, 200) : null })) },
    expiring: expiring.map((c) => ({
      id: c.id, name: c.name, common_name: c.common_name, status: c.status, expires_at: iso(c.expires_at),
      days_left: Math.floor((new Date(c.expires_at as string).getTime() - now.getTime()) / DAY_MS),
    })),
  };
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Badge colours by urgency: expired or a week left red, two weeks orange, else amber. */
export function urgency(daysLeft: number): { label: string; color: string } {
  if (daysLeft < 0) return { label: 'expired', color: '#b91c1c' };
  const label = daysLeft === 1 ? '1 day' : `${daysLeft} days`;
  if (daysLeft <= 7) return { label, color: '#dc2626' };
  if (daysLeft <= 14) return { label, color: '#ea580c' };
  return { label, color: '#ca8a04' };
}

export function digestSubject(d: DigestData): string {
  return `certctl digest: ${d.certificates.expiring} expiring, ${d.certificates.expired} expired of ${d.certificates.total} certificates`;
}

function statCells(d: DigestData): [string, number][] {
  return [
    ['Certificates', d.certificates.total], ['Expiring (30 days)', d.certificates.expiring], ['Expired', d.certificates.expired],
    ['Active agents', d.agents.online],
  ];
}

export function renderDigestHtml(d: DigestData): string {
  const cell = 'padding:12px;border:1px solid #e5e7eb;text-align:center';
  const stats = statCells(d).map(([label, n]) => `<td style="${cell}"><div style="font-size:24px;font-weight:bold">${n}</div><div style="color:#6b7280;font-size:12px">${esc(label)}</div></td>`).join('');
  const jobs = Object.entries(d.jobs.by_status).sort(([a], [b]) => a.localeCompare(b));
  const jobRows = jobs.length ? jobs.map(([s, n]) => `<tr><td style="padding:4px 8px">${esc(s)}</td><td style="padding:4px 8px;text-align:right">${n}</td></tr>`).join('') : '<tr><td style="padding:4px 8px" colspan="2">No job activity.</td></tr>';
  const failed = d.jobs.failed.map((j) => `<li>${esc(j.type)} job ${esc(j.id)}${j.certificate_id ? ` (certificate ${esc(j.certificate_id)})` : ''}${j.last_error ? `: ${esc(j.last_error)}` : ''}</li>`).join('');
  const expRows = d.expiring.map((c) => {
    const u = urgency(c.days_left);
    return `<tr><td style="padding:6px 8px;border-top:1px solid #e5e7eb">${esc(c.common_name)}<div style="color:#6b7280;font-size:12px">${esc(c.id)}</div></td>`
      + `<td style="padding:6px 8px;border-top:1px solid #e5e7eb">${esc(c.expires_at.slice(0, 10))}</td>`
      + `<td style="padding:6px 8px;border-top:1px solid #e5e7eb"><span style="background:${u.color};color:#fff;border-radius:9px;padding:2px 8px;font-size:12px">${esc(u.label)}</span></td></tr>`;
  }).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>certctl digest</title></head>`
    + `<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;color:#111827"><div style="max-width:640px;margin:0 auto">`
    + `<h1 style="font-size:20px">Certificate digest</h1><p style="color:#6b7280">Generated ${esc(d.generated_at)}; jobs of the last ${d.period_hours} hours.</p>`
    + `<table role="presentation" style="width:100%;border-collapse:collapse"><tr>${stats}</tr></table>`
    + `<h2 style="font-size:16px">Jobs</h2><table style="border-collapse:collapse">${jobRows}</table>`
    + (failed ? `<h3 style="font-size:14px">Failed jobs</h3><ul>${failed}</ul>` : '')
    + `<h2 style="font-size:16px">Expiring within ${EXPIRING_WINDOW_DAYS} days</h2>`
    + (expRows ? `<table style="width:100%;border-collapse:collapse"><tr><th align="left" style="padding:6px 8px">Certificate</th><th align="left" style="padding:6px 8px">Expires</th><th align="left" style="padding:6px 8px">Left</th></tr>${expRows}</table>` : '<p>No certificate expires within this window.</p>')
    + `</div></body></html>`;
}

export function renderDigestText(d: DigestData): string {
  const lines = [`Certificate digest, generated ${d.generated_at}`, ''];
  for (const [label, n] of statCells(d)) lines.push(`${`${label}:`.padEnd(22)}${n}`);
  lines.push('', `Jobs of the last ${d.period_hours} hours:`);
  const jobs = Object.entries(d.jobs.by_status).sort(([a], [b]) => a.localeCompare(b));
  lines.push(...(jobs.length ? jobs.map(([s, n]) => `  ${s}: ${n}`) : ['  no job activity']));
  for (const j of d.jobs.failed) lines.push(`  failed: ${j.type} job ${j.id}${j.certificate_id ? ` (certificate ${j.certificate_id})` : ''}${j.last_error ? `: ${j.last_error}` : ''}`);
  lines.push('', `Expiring within ${EXPIRING_WINDOW_DAYS} days:`);
  lines.push(...(d.expiring.length ? d.expiring.map((c) => `  ${c.common_name} (${c.id}) expires ${c.expires_at.slice(0, 10)}: ${urgency(c.days_left).label}`) : ['  none']));
  return lines.join('\n');
}
