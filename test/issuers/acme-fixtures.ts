import { issueRequest as caIssueRequest, makeCsr, scratch } from '../ca/ca-support.js';

/** A fresh P-256 CSR (openssl) for these DNS names; the first is the CN. The key stays in a temp dir that is removed. */
export function csrFor(names: string[]): string {
  const tmp = scratch();
  try {
    return makeCsr(tmp.dir, { cn: names[0], sans: names });
  } finally {
    tmp.cleanup();
  }
}

export const issueRequest = (certificateId: string, csrPem: string, names: string[]) => caIssueRequest(csrPem, { certificateId, commonName: names[0], sans: names });
