import type { CaSignRequest } from '@certctl/sdk';
import { parseCsrFast } from '../crypto/csr-fast.js';
import { pemToDer } from '../crypto/der.js';
import { x509 } from '../crypto/x509-setup.js';
import { CaError } from './ca-errors.js';
import { constrainedNames, violation, type NameConstraints } from './name-constraints.js';

/**
 * The common names and emailAddress values of a distinguished name string ("CN=a, O=b").
 * A subject that cannot be read is refused rather than left unchecked (the signer,
 * which reads it the same way, could not use it either).
 */
function subjectNamesOf(dn: string): { commonNames: string[]; emails: string[] } {
  if (!dn) return { commonNames: [], emails: [] };
  try {
    const name = new x509.Name(dn);
    return { commonNames: name.getField('CN'), emails: name.getField('E') };
  } catch {
    throw new CaError('bad_request', `the subject ${JSON.stringify(dn.slice(0, 100))} cannot be read to check it against the CA's name constraints; nothing was signed`);
  }
}

/**
 * The names the signed leaf will carry, as the crypto pool decides them: the
 * request's subject and SANs when given, else the CSR's. The CSR is read with the
 * pool's fast DER reader, falling back to the general library for unusual shapes.
 */
function leafNamesOf(request: CaSignRequest): { sans: string[]; commonNames: string[]; emails: string[] } {
  let csr: { sans: string[]; subject: string } | null = null;
  if (request.sans === undefined || request.subject === undefined) {
    try {
      csr = parseCsrFast(pemToDer(request.csrPem, /(NEW )?CERTIFICATE REQUEST/));
      if (!csr) {
        const lib = new x509.Pkcs10CertificateRequest(request.csrPem);
        const san = lib.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
        csr = { subject: lib.subject, sans: (san?.names.items ?? []).map((n) => n.value) };
      }
    } catch {
      throw new CaError('csr_invalid', 'the CSR cannot be read to check it against the CA\'s name constraints');
    }
  }
  return { sans: request.sans ?? csr?.sans ?? [], ...subjectNamesOf(request.subject ?? csr?.subject ?? '') };
}

/**
 * Refuses (CaError `bad_request`, so the issuer reports `denied` and nothing is
 * signed) a leaf whose SANs, host-name CN or subject emailAddress break the name
 * constraints of any CA in the signing chain. Called by the keystore before the
 * crypto pool is asked to sign, only for chains that carry name constraints.
 */
export function checkLeafNames(constraints: readonly { subject: string; nc: NameConstraints }[], request: CaSignRequest): void {
  const names = leafNamesOf(request);
  for (const name of constrainedNames(names.sans, names.commonNames, names.emails)) {
    for (const { subject, nc } of constraints) {
      const why = violation(nc, name);
      if (why) throw new CaError('bad_request', `name constraints of ${subject}: ${why}; nothing was signed`);
    }
  }
}
