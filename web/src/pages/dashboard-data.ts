import { request, type ListEnvelope } from '../api/client';

export const CERT_STATUSES = ['Active', 'Expiring', 'Expired', 'RenewalInProgress', 'Pending', 'Failed', 'Revoked', 'Archived'] as const;
export const JOB_STATUSES = ['Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running', 'Completed', 'Failed', 'Cancelled'] as const;

export interface Summary {
  certificates: { total: number; by_status: Record<string, number> };
  expirations: { week_start: string; count: number }[];
}

/** Status counts and the weekly expiration timeline, grouped by the kernel in one request. */
export async function dashboardSummary(weeks = 12): Promise<{ statusCounts: Record<string, number>; expirations: { label: string; count: number }[] }> {
  const s = await request<Summary>('/api/v1/dashboard/summary', { query: { weeks } });
  return {
    statusCounts: Object.fromEntries(CERT_STATUSES.map((st) => [st, s.certificates.by_status[st] ?? 0])),
    expirations: s.expirations.map((e) => ({ label: e.week_start.slice(5, 10), count: e.count })),
  };
}

export interface JobTrend {
  days: string[];
  issued: number[];
  byStatus: Record<string, number[]>;
}

/** Jobs of the last `days` days bucketed per day: issuance/renewal volume and outcome. */
export async function jobTrend(days = 14, now = new Date()): Promise<JobTrend> {
  const start = new Date(now.getTime() - (days - 1) * 86_400_000);
  start.setUTCHours(0, 0, 0, 0);
  const res = await request<ListEnvelope<{ type: string; status: string; created_at: string }>>('/api/v1/jobs', {
    query: { created_after: start.toISOString(), per_page: 500, sort: '-created_at', fields: 'id,type,status,created_at' },
  });
  const labels = Array.from({ length: days }, (_, i) => new Date(start.getTime() + i * 86_400_000).toISOString().slice(5, 10));
  const issued = labels.map(() => 0);
  const byStatus: Record<string, number[]> = Object.fromEntries(JOB_STATUSES.map((s) => [s, labels.map(() => 0)]));
  for (const j of res.data) {
    const i = Math.floor((new Date(j.created_at).getTime() - start.getTime()) / 86_400_000);
    if (i < 0 || i >= days) continue;
    if (j.type === 'Issuance' || j.type === 'Renewal') issued[i] += 1;
    if (byStatus[j.status]) byStatus[j.status][i] += 1;
  }
  return { days: labels, issued, byStatus };
}
