import net from 'node:net';

/**
 * The names a certificate is issued for, and the names a CSR asks for, in one
 * comparable form: DNS names and e-mail addresses lower-cased, IPv6 addresses
 * compressed (a CSR parser may print 2001:db8:0:0:0:0:0:1 for 2001:db8::1).
 */
export function normaliseName(value: string): string {
  const v = value.trim();
  if (net.isIPv6(v)) return new URL(`http://[${v}]/`).hostname.slice(1, -1);
  return v.toLowerCase();
}

/** Whether a value can be a subject alternative name of ours (DNS name, IP address, e-mail). */
export const isSanValue = (value: string): boolean => net.isIP(value) !== 0 || value.includes('@') || /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/i.test(value);

export const isEmailName = (value: string): boolean => value.includes('@');

/**
 * The SANs a certificate is issued with: its common name first (when it can be a
 * SAN: clients match names against SANs only), then its other names, once each.
 */
export function certificateSans(cert: { common_name: string; sans: string[] }): string[] {
  const out: string[] = [];
  for (const n of [cert.common_name, ...(cert.sans ?? [])]) {
    if (!n || !isSanValue(n)) continue;
    const v = normaliseName(n);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

/** The CN of an RFC 4514-style subject ("CN=a.example, O=Acme"), unescaped; null when absent. */
export function subjectCommonName(subject: string): string | null {
  const m = /(?:^|,\s*)CN=((?:\\.|[^,\\])*)/i.exec(subject ?? '');
  if (!m) return null;
  return m[1].replace(/\\(.)/g, '$1').trim() || null;
}
