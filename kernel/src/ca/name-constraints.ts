import net from 'node:net';
import { generalNameFor } from '../crypto/certificate-sign.js';
import { children, contentOf, implicitPrim, oidToString, pemToDer, readTlv, seq, tlv, type Tlv } from '../crypto/der.js';

/**
 * X.509 name constraints (RFC 5280 4.2.1.10) for the name types certctl issues:
 * dNSName, iPAddress and rfc822Name. A CA's constraints are read from its
 * certificate (the one source of truth) and applied, for every CA up the chain, to a
 * leaf's SANs and subject common name before it is signed.
 *
 * Matching follows RFC 5280 and OpenSSL (so what we refuse is what openssl would):
 * - DNS: `example.com` permits example.com and any name below it; `.example.com`
 *   only names below it;
 * - IP: an address and mask (CIDR here, `10.0.0.0/8`), same family only;
 * - email: `user@example.com` one mailbox, `example.com` any mailbox at that host,
 *   `.example.com` any mailbox at a host below it.
 * Within one CA, a name of a type with permitted subtrees must match one of them;
 * a name matching any excluded subtree is refused.
 */

export interface Subtrees {
  dns: string[];
  ip: string[];
  email: string[];
}

export interface NameConstraints {
  permitted: Subtrees;
  excluded: Subtrees;
}

const NC_OID = '2.5.29.30';
const MAX_ENTRIES = 100;
const DNS_BASE = /^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;
const HOST = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

export const emptySubtrees = (): Subtrees => ({ dns: [], ip: [], email: [] });
const isEmpty = (s: Subtrees) => !s.dns.length && !s.ip.length && !s.email.length;
export const hasConstraints = (nc: NameConstraints | null): nc is NameConstraints => Boolean(nc && (!isEmpty(nc.permitted) || !isEmpty(nc.excluded)));

/** An address range `a.b.c.d/n` or `v6::/n` as the bytes of address and mask, or null. */
function parseCidr(text: string): { addr: Buffer; mask: Buffer } | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return null;
  const family = net.isIP(m[1]);
  if (!family) return null;
  const bits = Number(m[2]);
  const addr = ipBytes(m[1]);
  if (!addr || bits > addr.length * 8) return null;
  const mask = Buffer.alloc(addr.length);
  for (let i = 0; i < bits; i++) mask[i >> 3] |= 0x80 >> (i & 7);
  return { addr: Buffer.from(addr.map((b, i) => b & mask[i])), mask };
}

function ipBytes(ip: string): Buffer | null {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!net.isIPv6(ip)) return null;
  const [head, tail = ''] = ip.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  let h = groups(head);
  let t = ip.includes('::') ? groups(tail) : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = (list: string[]) => {
    const last = list[list.length - 1];
    if (!last || !net.isIPv4(last)) return list;
    const b = last.split('.').map(Number);
    return [...list.slice(0, -1), ((b[0] << 8) | b[1]).toString(16), ((b[2] << 8) | b[3]).toString(16)];
  };
  if (ip.includes('::')) t = v4(t);
  else h = v4(h);
  const all = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function cidrOf(addr: Buffer, mask: Buffer): string {
  let bits = 0;
  for (const b of mask) for (let i = 7; i >= 0; i--) if (b & (1 << i)) bits++;
  if (addr.length === 4) return `${[...addr].join('.')}/${bits}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(addr.readUInt16BE(i).toString(16));
  return `${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}/${bits}`;
}

/** Checks and normalises the API's `name_constraints`; the problem as text when invalid. */
export function parseNameConstraints(v: unknown): { ok: true; value: NameConstraints } | { ok: false; problem: string } {
  const out: NameConstraints = { permitted: emptySubtrees(), excluded: emptySubtrees() };
  if (v === undefined || v === null) return { ok: true, value: out };
  if (typeof v !== 'object' || Array.isArray(v)) return { ok: false, problem: 'name_constraints must be an object with permitted and/or excluded' };
  for (const [side, subtrees] of Object.entries(v as Record<string, unknown>)) {
    if (side !== 'permitted' && side !== 'excluded') return { ok: false, problem: `name_constraints: unknown field ${JSON.stringify(side.slice(0, 40))}` };
    if (typeof subtrees !== 'object' || subtrees === null || Array.isArray(subtrees)) return { ok: false, problem: `name_constraints.${side} must be an object with dns, ip and/or email lists` };
    for (const [kind, list] of Object.entries(subtrees as Record<string, unknown>)) {
      const where = `name_constraints.${side}.${kind}`;
      if (kind !== 'dns' && kind !== 'ip' && kind !== 'email') return { ok: false, problem: `name_constraints.${side}: unknown field ${JSON.stringify(kind.slice(0, 40))} (dns, ip, email)` };
      if (!Array.isArray(list) || list.length > MAX_ENTRIES) return { ok: false, problem: `${where} must be an array of at most ${MAX_ENTRIES} strings` };
      for (const raw of list) {
        // Host names compare without case; an email's local part keeps its case (RFC 5280 7.5).
        const t = typeof raw === 'string' ? raw.trim().replace(/\.$/, '') : '';
        const s = kind === 'email' ? lowerEmailHost(t) : t.toLowerCase();
        let norm: string | null = null;
        if (kind === 'dns' && s.length <= 253 && DNS_BASE.test(s)) norm = s;
        if (kind === 'ip') {
          const r = parseCidr(s);
          norm = r ? cidrOf(r.addr, r.mask) : null;
        }
        if (kind === 'email' && s.length <= 320) {
          const at = s.lastIndexOf('@');
          if (at > 0 ? HOST.test(s.slice(at + 1)) && !/[\s@]/.test(s.slice(0, at)) : DNS_BASE.test(s)) norm = s;
        }
        if (!norm) return { ok: false, problem: `${where} has an invalid entry ${JSON.stringify(String(raw).slice(0, 80))} (${kind === 'dns' ? 'a domain such as example.com or .example.com' : kind === 'ip' ? 'an address range such as 10.0.0.0/8 or 2001:db8::/32' : 'a mailbox, host or .domain'})`, };
        if (!out[side][kind].includes(norm)) out[side][kind].push(norm);
      }
    }
  }
  return { ok: true, value: out };
}

/** An email constraint or mailbox with its host part lowercased (the local part is case-sensitive). */
function lowerEmailHost(s: string): string {
  const at = s.lastIndexOf('@');
  return at < 0 ? s.toLowerCase() : `${s.slice(0, at + 1)}${s.slice(at + 1).toLowerCase()}`;
}

const ia5 = (s: string) => Buffer.from(s, 'ascii');

/** The NameConstraints extension value (DER), for a child CA certificate. */
export function encodeNameConstraints(nc: NameConstraints): Buffer {
  const subtrees = (s: Subtrees) => Buffer.concat([
    ...s.dns.map((d) => seq(implicitPrim(2, ia5(d)))),
    ...s.ip.map((c) => {
      const r = parseCidr(c)!;
      return seq(implicitPrim(7, Buffer.concat([r.addr, r.mask])));
    }),
    ...s.email.map((e) => seq(implicitPrim(1, ia5(e)))),
  ]);
  const parts: Buffer[] = [];
  // permittedSubtrees [0] and excludedSubtrees [1] are IMPLICIT SEQUENCE OF: constructed context tags.
  if (!isEmpty(nc.permitted)) parts.push(tlv(0xa0, subtrees(nc.permitted)));
  if (!isEmpty(nc.excluded)) parts.push(tlv(0xa1, subtrees(nc.excluded)));
  return seq(...parts);
}

/** The name constraints in a certificate, or null without the extension. Unsupported name types are kept as `unsupported`. */
export function nameConstraintsOf(pem: string): (NameConstraints & { unsupported: boolean }) | null {
  const der = pemToDer(pem, /CERTIFICATE/);
  const [tbs] = children(der, readTlv(der, 0));
  const exts = children(der, tbs).find((f) => f.tag === 0xa3);
  if (!exts) return null;
  for (const ext of children(der, children(der, exts)[0])) {
    const parts = children(der, ext);
    if (oidToString(contentOf(der, parts[0])) !== NC_OID) continue;
    const value = parts[parts.length - 1];
    const nc = readTlv(der, value.contentStart, value.end);
    const out = { permitted: emptySubtrees(), excluded: emptySubtrees(), unsupported: false };
    for (const side of children(der, nc)) {
      const into = side.tag === 0xa0 ? out.permitted : side.tag === 0xa1 ? out.excluded : null;
      if (!into) continue;
      for (const subtree of children(der, side)) {
        const [base] = children(der, subtree) as [Tlv];
        const bytes = contentOf(der, base);
        if (base.tag === 0x82) into.dns.push(bytes.toString('latin1').toLowerCase());
        else if (base.tag === 0x81) into.email.push(lowerEmailHost(bytes.toString('latin1')));
        else if (base.tag === 0x87 && (bytes.length === 8 || bytes.length === 32)) into.ip.push(cidrOf(bytes.subarray(0, bytes.length / 2), bytes.subarray(bytes.length / 2)));
        else out.unsupported = true;
      }
    }
    return out;
  }
  return null;
}

function dnsWithin(name: string, base: string): boolean {
  if (!base) return true;
  if (base.startsWith('.')) return name.length > base.length && name.endsWith(base);
  return name === base || name.endsWith(`.${base}`);
}

/** A wildcard name stands for every name one label deep: it is permitted only if all are, excluded if any is. */
const WILDCARD_PROBE = 'x--certctl-wildcard-probe';
function dnsPermitted(name: string, base: string): boolean {
  return dnsWithin(name.startsWith('*.') ? `${WILDCARD_PROBE}${name.slice(1)}` : name, base);
}
function dnsExcluded(name: string, base: string): boolean {
  if (!name.startsWith('*.')) return dnsWithin(name, base);
  const parent = name.slice(2);
  // Either the wildcard's names are below the base, or the base is itself one of them
  // (one label below the parent; `.base` excludes only names below the base, which the wildcard does not cover).
  return dnsWithin(`${WILDCARD_PROBE}.${parent}`, base) || (!base.startsWith('.') && base.endsWith(`.${parent}`) && !base.slice(0, -parent.length - 1).includes('.'));
}

function ipWithin(ip: string, cidr: string): boolean {
  const bytes = ipBytes(ip);
  const r = parseCidr(cidr);
  if (!bytes || !r || bytes.length !== r.addr.length) return false;
  return bytes.every((b, i) => (b & r.mask[i]) === r.addr[i]);
}

function emailWithin(mailbox: string, base: string): boolean {
  const at = mailbox.lastIndexOf('@');
  const local = mailbox.slice(0, at);
  const host = mailbox.slice(at + 1).toLowerCase();
  const bat = base.lastIndexOf('@');
  if (bat >= 0) return local === base.slice(0, bat) && host === base.slice(bat + 1);
  return base.startsWith('.') ? host.endsWith(base) : host === base;
}

export type LeafName = { kind: 'dns' | 'ip' | 'email'; value: string; from: 'san' | 'cn' | 'subject email' };

/**
 * The names of a leaf that name constraints apply to: its SANs, typed as the signer
 * types them (generalNameFor; URIs are not constrained here, and a chain with URI
 * constraints is refused), a CN that is a host name or address, and the subject's
 * emailAddress attributes (which RFC 5280 4.2.1.10 and OpenSSL check against email constraints).
 */
export function constrainedNames(sans: readonly string[], commonNames: readonly string[], subjectEmails: readonly string[] = []): LeafName[] {
  const out: LeafName[] = [];
  for (const value of sans) {
    let type: string;
    try {
      type = generalNameFor(value).type;
    } catch {
      type = 'dns'; // the signer refuses it anyway; checked as the DNS name it claims to be
    }
    if (type === 'dns') out.push({ kind: 'dns', value: value.toLowerCase().replace(/\.$/, ''), from: 'san' });
    else if (type === 'ip' || type === 'email') out.push({ kind: type, value, from: 'san' });
  }
  for (const raw of commonNames) {
    const v = raw.trim();
    if (net.isIP(v)) out.push({ kind: 'ip', value: v, from: 'cn' });
    else if (/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)+\.?$/i.test(v)) out.push({ kind: 'dns', value: v.toLowerCase().replace(/\.$/, ''), from: 'cn' });
  }
  for (const e of subjectEmails) out.push({ kind: 'email', value: e.trim(), from: 'subject email' });
  return out;
}

/** Why `name` breaks `nc`, or null when it may be signed. */
export function violation(nc: NameConstraints, name: LeafName): string | null {
  const label = `${name.from === 'cn' ? 'subject CN' : name.from === 'san' ? 'SAN' : 'subject emailAddress'} ${name.value}`;
  const within = (base: string) => (name.kind === 'dns' ? dnsPermitted(name.value, base) : name.kind === 'ip' ? ipWithin(name.value, base) : emailWithin(name.value, base));
  const hit = (base: string) => (name.kind === 'dns' ? dnsExcluded(name.value, base) : within(base));
  const excluded = nc.excluded[name.kind].find(hit);
  if (excluded !== undefined) return `${label} is in the excluded subtree ${name.kind}:${excluded}`;
  const permitted = nc.permitted[name.kind];
  if (permitted.length && !permitted.some(within)) return `${label} is outside the permitted subtrees (${permitted.map((p) => `${name.kind}:${p}`).join(', ')})`;
  return null;
}
