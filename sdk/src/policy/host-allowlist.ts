import net from 'node:net';

/**
 * The `http.hosts` capability as rules. An entry is a host name, an IP address,
 * or `*.suffix` (any subdomain of suffix, not suffix itself), optionally with a
 * `:port` and an `http://` or `https://` scheme prefix:
 *
 *   ca.example.com          https to ca.example.com on any port
 *   *.example.com:8443      https to any subdomain, port 8443 only
 *   http://10.0.0.5:8080    plain http (and https) to that address and port
 *   [fd00::5]:8443          IPv6 literal
 *
 * Without a scheme only https is allowed. Without a port any port is allowed:
 * the host is the boundary the operator reviews, as in Deno's --allow-net.
 */
export interface HostRule {
  entry: string;
  host: string;
  wildcard: boolean;
  /** The entry is an IP literal (normalised). */
  ip: boolean;
  port: number | null;
  allowHttp: boolean;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const isHostname = (h: string) => h.length <= 253 && h.split('.').every((l) => LABEL.test(l));

/** Parses one declared entry; null when it is not a usable host pattern. */
export function parseHostRule(entry: string): HostRule | null {
  if (typeof entry !== 'string') return null;
  let rest = entry.trim().toLowerCase();
  let allowHttp = false;
  const scheme = /^(https?):\/\//.exec(rest);
  if (scheme) {
    allowHttp = scheme[1] === 'http';
    rest = rest.slice(scheme[0].length).replace(/\/$/, '');
  }
  if (!rest || /[/?#@\s]/.test(rest)) return null;
  let host = rest;
  let port: number | null = null;
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1];
    if (net.isIP(host) !== 6) return null;
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(rest);
    if (!m) return null;
    host = m[1];
    if (m[2] !== undefined) port = Number(m[2]);
  }
  if (port !== null && !(Number.isInteger(port) && port >= 1 && port <= 65535)) return null;
  const wildcard = host.startsWith('*.');
  const bare = wildcard ? host.slice(2) : host;
  const ip = !wildcard && net.isIP(bare) !== 0;
  if (!ip && !isHostname(bare)) return null;
  if (wildcard && !bare.includes('.')) return null; // `*.com` would be every host under a TLD
  return { entry, host: bare, wildcard, ip, port, allowHttp };
}

export function parseHostRules(entries: readonly string[] | undefined): HostRule[] {
  return (entries ?? []).map(parseHostRule).filter((r): r is HostRule => r !== null);
}

const defaultPort = (protocol: string) => (protocol === 'http:' ? 80 : 443);

/** The URL's host as the rules spell hosts: lowercase, no IPv6 brackets, no trailing dot. */
export function urlHost(url: URL): string {
  return url.hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
}

/** The first rule that lets this URL through, or why none does. */
export function matchHostRule(rules: readonly HostRule[], url: URL): { rule: HostRule } | { reason: string } {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { reason: `scheme ${url.protocol} is not allowed (only https, or http where declared)` };
  if (url.username || url.password) return { reason: 'credentials in the URL are not allowed; send an Authorization header' };
  const host = urlHost(url);
  const port = url.port ? Number(url.port) : defaultPort(url.protocol);
  let hostMatched = false;
  for (const r of rules) {
    const hostOk = r.wildcard ? host.endsWith(`.${r.host}`) : host === r.host || (r.ip && net.isIP(host) === 6 && sameV6(host, r.host));
    if (!hostOk) continue;
    hostMatched = true;
    if (r.port !== null && r.port !== port) continue;
    if (url.protocol === 'http:' && !r.allowHttp) continue;
    return { rule: r };
  }
  if (!hostMatched) return { reason: `host ${host} is not among the plugin's granted hosts` };
  return { reason: `${url.protocol.slice(0, -1)} to ${host}:${port} is not granted (declared: ${rules.filter((r) => r.host === host || host.endsWith(`.${r.host}`)).map((r) => r.entry).join(', ')})` };
}

/** Two spellings of one IPv6 address (`fd00::5` and `fd00:0::5`). */
function sameV6(a: string, b: string): boolean {
  const list = new net.BlockList();
  try {
    list.addAddress(b, 'ipv6');
    return list.check(a, 'ipv6');
  } catch {
    return false;
  }
}
