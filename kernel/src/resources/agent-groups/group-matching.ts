import net from 'node:net';

/** The dynamic criteria of an agent group; null means "any". */
export interface GroupCriteria {
  match_os: string | null;
  match_architecture: string | null;
  match_ip_cidr: string | null;
  match_version: string | null;
}

/** What an agent reports about itself in its heartbeat. */
export interface AgentFacts {
  os: string;
  architecture: string;
  ip_address: string;
  version: string;
}

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses "10.0.0.0/8" or "fd00::/8"; null when it is not a CIDR block. */
export function parseCidr(value: string): Cidr | null {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(value);
  if (!m) return null;
  const version = net.isIP(m[1]);
  const prefix = Number(m[2]);
  if (version === 0 || prefix > (version === 4 ? 32 : 128)) return null;
  return { address: m[1], prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export const hasCriteria = (g: GroupCriteria) =>
  Boolean(g.match_os || g.match_architecture || g.match_ip_cidr || g.match_version);

const sameText = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/** "1.4.2" matches exactly; "1.4.*" matches every version starting with "1.4.". */
function versionMatches(pattern: string, version: string): boolean {
  return pattern.endsWith('*') ? version.startsWith(pattern.slice(0, -1)) : version === pattern;
}

function ipInCidr(ip: string, cidr: Cidr): boolean {
  const family = net.isIP(ip);
  if (family === 0 || (family === 4 ? 'ipv4' : 'ipv6') !== cidr.family) return false;
  const list = new net.BlockList();
  list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  return list.check(ip, cidr.family);
}

/**
 * Whether an agent falls into a group by its criteria: every criterion that is
 * set must match. A group without criteria matches nobody dynamically (its
 * members are then only the manual includes).
 */
export function matchesAgent(g: GroupCriteria, a: AgentFacts): boolean {
  if (!hasCriteria(g)) return false;
  if (g.match_os && !sameText(g.match_os, a.os)) return false;
  if (g.match_architecture && !sameText(g.match_architecture, a.architecture)) return false;
  if (g.match_version && !versionMatches(g.match_version, a.version)) return false;
  if (g.match_ip_cidr) {
    const cidr = parseCidr(g.match_ip_cidr);
    if (!cidr || !ipInCidr(a.ip_address, cidr)) return false;
  }
  return true;
}
