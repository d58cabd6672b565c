import { EXTENDED_KEY_USAGES } from '../crypto/crypto-types.js';
import { children, contentOf, expectTag, oidToString, readTlv, type Tlv } from '../crypto/der.js';
import { normaliseName } from './issuance-names.js';
import type { IssuancePlan } from './profile-enforcement.js';

/**
 * What an issued certificate grants beyond its key, checked against the plan the
 * profile allowed. An issuer plugin is trusted to talk to a CA, not to decide what
 * a certificate may do: a third-party plugin, or one misusing ctx.ca.sign, could
 * return a CA certificate, other names or more usages than were asked for. The
 * rules (docs/issuance.md):
 * - basicConstraints CA:TRUE is refused;
 * - the SANs, as a set (names normalised as the plan's are), must equal the plan's:
 *   the issuance service promises the certificate's names, no more and no fewer;
 *   a name of a kind we never issue (URI, directory name, ...) is an extra name;
 * - the EKUs must be among the plan's, except that a CA may add clientAuth to a
 *   serverAuth certificate (many public ACME CAs do, and ACME cannot ask otherwise)
 *   unless the profile lists its EKUs without clientAuth; a leaf with no EKU extension
 *   (valid for any purpose) or with anyExtendedKeyUsage is refused.
 * Reads the DER directly (cheap next to the signature the CA made).
 */

const OID = { basicConstraints: '2.5.29.19', subjectAltName: '2.5.29.17', extKeyUsage: '2.5.29.37', anyEku: '2.5.29.37.0' };
const EKU_NAMES = new Map<string, string>(Object.entries(EXTENDED_KEY_USAGES).map(([name, oid]) => [oid, name]));

interface LeafGrants {
  ca: boolean;
  /** SANs, normalised; kinds we never issue as `uri:...`, `dirName`, `other:<tag>`. */
  names: string[];
  /** EKU names (dotted OIDs for unnamed ones); null without the extension. */
  ekus: string[] | null;
}

function ipName(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
    return normaliseName(groups.join(':'));
  }
  return `ip:${bytes.toString('hex')}`;
}

function generalName(der: Buffer, t: Tlv): string {
  const text = () => contentOf(der, t).toString('latin1');
  switch (t.tag) {
    case 0x81: return normaliseName(text()); // rfc822Name
    case 0x82: return normaliseName(text()); // dNSName
    case 0x87: return ipName(contentOf(der, t)); // iPAddress
    case 0x86: return `uri:${text()}`;
    case 0xa4: return 'dirName';
    default: return `other:0x${t.tag.toString(16)}`;
  }
}

/** The extensions of a certificate's DER that decide what it may be used for. */
function leafGrants(der: Buffer): LeafGrants {
  const cert = expectTag(readTlv(der, 0), 0x30, 'certificate');
  const tbs = expectTag(children(der, cert)[0], 0x30, 'tbsCertificate');
  const out: LeafGrants = { ca: false, names: [], ekus: null };
  const exts = children(der, tbs).find((f) => f.tag === 0xa3);
  if (!exts) return out;
  for (const ext of children(der, expectTag(children(der, exts)[0], 0x30, 'extensions'))) {
    const parts = children(der, ext);
    const id = oidToString(contentOf(der, expectTag(parts[0], 0x06, 'extnID')));
    const value = expectTag(parts[parts.length - 1], 0x04, 'extnValue');
    const inner = readTlv(der, value.contentStart, value.end);
    if (id === OID.basicConstraints) {
      const first = children(der, inner)[0];
      out.ca = first?.tag === 0x01 && der[first.contentStart] !== 0;
    } else if (id === OID.subjectAltName) {
      out.names = children(der, inner).map((n) => generalName(der, n));
    } else if (id === OID.extKeyUsage) {
      out.ekus = children(der, inner).map((o) => {
        const dotted = oidToString(contentOf(der, expectTag(o, 0x06, 'KeyPurposeId')));
        return EKU_NAMES.get(dotted) ?? dotted;
      });
    }
  }
  return out;
}

/** What the leaf (its DER, as parseIssued read it) grants beyond the plan, in words; empty when it keeps to the plan. */
export function leafProblems(leafDer: Buffer, plan: Pick<IssuancePlan, 'sans' | 'ekus'>, profileEkus: readonly string[] | null): string[] {
  let grants: LeafGrants;
  try {
    grants = leafGrants(leafDer);
  } catch (err) {
    return [`its extensions cannot be read (${(err as Error).message})`];
  }
  const problems: string[] = [];
  if (grants.ca) problems.push('it is a CA certificate (basicConstraints CA:TRUE)');
  const want = new Set(plan.sans);
  const have = new Set(grants.names);
  const extra = [...have].filter((n) => !want.has(n));
  const missing = [...want].filter((n) => !have.has(n));
  if (extra.length) problems.push(`it names ${extra.join(', ')}, which the request did not`);
  if (missing.length) problems.push(`it leaves out ${missing.join(', ')}`);
  if (grants.ekus === null) problems.push(`it has no extended key usage (valid for any purpose); expected ${plan.ekus.join(', ')}`);
  else {
    const tolerated = plan.ekus.includes('serverAuth') && (!profileEkus?.length || profileEkus.includes('clientAuth')) ? [...plan.ekus, 'clientAuth'] : plan.ekus;
    const more = grants.ekus.filter((e) => !tolerated.includes(e));
    if (more.length) problems.push(`it allows ${more.map((e) => (e === OID.anyEku ? 'anyExtendedKeyUsage' : e)).join(', ')}, beyond ${plan.ekus.join(', ')}`);
  }
  return problems;
}
