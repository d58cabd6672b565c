import crypto from 'node:crypto';
import { x509 } from '../crypto/x509-setup.js';
import type { CaRow } from './ca-store.js';
import { nameConstraintsOf } from './name-constraints.js';

export type CaRole = 'root' | 'intermediate' | 'issuing';

/** A CA as the API shows it: everything about its certificate and state, never its key. */
export interface CaView {
  id: string;
  issuer_id: string;
  parent_id: string | null;
  role: CaRole;
  status: string;
  source: string;
  subject: string;
  issuer_subject: string;
  key_algorithm: string;
  serial_number: string;
  subject_key_id: string | null;
  fingerprint_sha256: string;
  not_before: string;
  not_after: string;
  /** BasicConstraints pathLenConstraint; null when unlimited. */
  path_len_constraint: number | null;
  name_constraints: { permitted: Record<string, string[]>; excluded: Record<string, string[]> } | null;
  crl_url: string | null;
  certificate_pem: string;
  created_at: string;
  retiring_at: string | null;
  drain_until: string | null;
  retired_at: string | null;
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
const facts = new Map<string, { issuer: string; selfSigned: boolean; pathLength: number | null; nc: CaView['name_constraints'] }>();

/** What the view reads from the certificate (parsed once per certificate). */
function certificateView(pem: string, fingerprint: string) {
  let hit = facts.get(fingerprint);
  if (!hit) {
    const x = new crypto.X509Certificate(pem);
    const lib = new x509.X509Certificate(pem);
    const nc = nameConstraintsOf(pem);
    hit = {
      issuer: lib.issuer,
      selfSigned: x.checkIssued(x),
      pathLength: lib.getExtension(x509.BasicConstraintsExtension)?.pathLength ?? null,
      nc: nc ? { permitted: { ...nc.permitted }, excluded: { ...nc.excluded } } : null,
    };
    if (facts.size > 5000) facts.clear();
    facts.set(fingerprint, hit);
  }
  return hit;
}

export function caView(row: CaRow, publicBaseUrl: string | undefined): CaView {
  const c = certificateView(row.certificate_pem, row.fingerprint_sha256);
  const role: CaRole = row.status === 'active' ? 'issuing' : !row.parent_id && c.selfSigned ? 'root' : 'intermediate';
  return {
    id: row.id, issuer_id: row.issuer_id, parent_id: row.parent_id, role, status: row.status, source: row.source,
    subject: row.subject, issuer_subject: c.issuer, key_algorithm: row.key_algorithm, serial_number: row.serial_number,
    subject_key_id: row.subject_key_id, fingerprint_sha256: row.fingerprint_sha256,
    not_before: row.not_before.toISOString(), not_after: row.not_after.toISOString(),
    path_len_constraint: c.pathLength, name_constraints: c.nc,
    crl_url: publicBaseUrl && row.status !== 'retired' ? `${publicBaseUrl}/.well-known/pki/crl/${encodeURIComponent(row.issuer_id)}/${encodeURIComponent(row.id)}` : null,
    certificate_pem: row.certificate_pem,
    created_at: row.created_at.toISOString(), retiring_at: iso(row.retiring_at), drain_until: iso(row.drain_until), retired_at: iso(row.retired_at),
  };
}
