/** Display helpers shared by pages. */

export function fmtDate(v: unknown): string {
  if (!v) return '—';
  const d = new Date(String(v));
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString().replace('T', ' ').slice(0, 16) + 'Z';
}

export function fmtRelative(v: unknown, now = Date.now()): string {
  if (!v) return '—';
  const ms = new Date(String(v)).getTime() - now;
  if (Number.isNaN(ms)) return String(v);
  const days = Math.round(ms / 86_400_000);
  if (Math.abs(days) >= 1) return days > 0 ? `in ${days}d` : `${-days}d ago`;
  const hours = Math.round(ms / 3_600_000);
  return hours >= 0 ? `in ${hours}h` : `${-hours}h ago`;
}

export function download(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
