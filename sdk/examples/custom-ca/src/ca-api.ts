import type { HttpResponse, IssueResult, Json, RevokeResult } from '@certctl/sdk';

/**
 * The CA service's wire format (what the example talks to):
 *
 *   POST {url}/sign        {"csr": PEM, "certificate_id", "common_name", "sans", "profile"?, "not_after"?}
 *   GET  {url}/orders/{id}
 *     200 {"certificate": PEM, "chain": [PEM...]}      issued
 *     202 {"order_id": "...", "retry_after": seconds}  accepted, not signed yet
 *     400 {"error": "..."}                             the request (CSR) is unusable
 *     403 {"error": "..."}                             refused by the CA's policy
 *     401 / 404 / 409 / 429 / 5xx                      see issueResultFrom
 *   GET  {url}/ca          {"chain": [PEM...]}
 *   POST {url}/revoke      {"serial": hex, "reason": RFC 5280 name} -> 200
 *
 * Every call carries `Authorization: Bearer <token>`.
 */

export function parseJson(res: HttpResponse): Record<string, Json> | null {
  if (res.bodyEncoding !== 'utf8') return null;
  try {
    const v = JSON.parse(res.body) as Json;
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

const isPem = (v: unknown, label: string): v is string => typeof v === 'string' && v.includes(`-----BEGIN ${label}-----`);
const errorText = (body: Record<string, Json> | null, status: number) => (typeof body?.error === 'string' ? body.error.slice(0, 300) : `HTTP ${status}`);

/** Maps the CA's answer to a sign or order request onto the contract's outcomes. */
export function issueResultFrom(res: HttpResponse): IssueResult {
  const body = parseJson(res);
  if (res.status === 200) {
    const chain = Array.isArray(body?.chain) ? body!.chain : [];
    if (!isPem(body?.certificate, 'CERTIFICATE') || !chain.every((c) => isPem(c, 'CERTIFICATE'))) {
      return { status: 'failed', reason: 'the CA answered 200 without a PEM certificate and chain', retryable: false };
    }
    return { status: 'issued', certificatePem: body!.certificate as string, chainPem: chain as string[] };
  }
  if (res.status === 202) {
    const orderId = body?.order_id;
    const retryAfter = Number(body?.retry_after ?? res.headers['retry-after'] ?? 30);
    if (typeof orderId !== 'string' || !orderId) return { status: 'failed', reason: 'the CA accepted the request but gave no order_id', retryable: true };
    return { status: 'pending', orderId, retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : 30 };
  }
  const why = errorText(body, res.status);
  if (res.status === 403) return { status: 'denied', reason: `the CA refused: ${why}` };
  if (res.status === 400 || res.status === 422) return { status: 'failed', reason: `the CA rejected the request: ${why}`, retryable: false };
  if (res.status === 401) return { status: 'failed', reason: `the CA did not accept the token: ${why}`, retryable: false };
  if (res.status === 404) return { status: 'failed', reason: `the CA does not know this order or path: ${why}`, retryable: false };
  return { status: 'failed', reason: `the CA answered ${res.status}: ${why}`, retryable: res.status === 408 || res.status === 409 || res.status === 429 || res.status >= 500 };
}

export function revokeResultFrom(res: HttpResponse): RevokeResult {
  if (res.status === 200 || res.status === 204) return { status: 'revoked' };
  return { status: 'failed', reason: `the CA answered ${res.status}: ${errorText(parseJson(res), res.status)}`, retryable: res.status === 429 || res.status >= 500 };
}

export function chainFrom(res: HttpResponse): string[] {
  const body = parseJson(res);
  if (res.status !== 200 || !Array.isArray(body?.chain) || !body!.chain.every((c) => isPem(c, 'CERTIFICATE'))) {
    throw new Error(`the CA did not return its chain (HTTP ${res.status})`);
  }
  return body!.chain as string[];
}
