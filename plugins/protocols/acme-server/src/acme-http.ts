import type { Json, PluginContext, ProtocolHttpRequest, ProtocolHttpResponse } from '@certctl/sdk';

/** One request as the handlers see it: where it is served and for which profile. */
export interface AcmeRequest {
  req: ProtocolHttpRequest;
  ctx: PluginContext;
  /** `https://host[:port]/acme`: accounts, orders, authorizations and certificates live here. */
  root: string;
  /** `root` or `root/profile/<id>`: directory, new-nonce, new-account, new-order, revoke-cert. */
  dirBase: string;
  /** The absolute URL of this request (what the JWS `url` must say). */
  url: string;
  /** Which directory: null for the default one. */
  profileKey: string | null;
  issuerId: string;
  profileId: string | null;
  mode: 'challenge' | 'trust_authenticated';
  /** New accounts here must carry an external account binding, and orders need a bound account. */
  eabRequired: boolean;
}

const ACME_ERROR = 'urn:ietf:params:acme:error:';

export type AcmeErrorType =
  | 'malformed' | 'badNonce' | 'badSignatureAlgorithm' | 'unauthorized' | 'accountDoesNotExist' | 'badCSR'
  | 'orderNotReady' | 'rejectedIdentifier' | 'unsupportedIdentifier' | 'serverInternal' | 'badRevocationReason' | 'alreadyRevoked'
  | 'incorrectResponse' | 'connection' | 'externalAccountRequired' | 'conflict' | 'rateLimited' | 'alreadyReplaced';

/** An RFC 8555 problem document. */
export function problem(type: AcmeErrorType, detail: string, status = 400, extra: Record<string, Json> = {}, headers: Record<string, string> = {}): ProtocolHttpResponse {
  return { status, headers: { 'Content-Type': 'application/problem+json', ...headers }, body: JSON.stringify({ type: `${ACME_ERROR}${type}`, detail, status, ...extra }) };
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): ProtocolHttpResponse {
  return { status, headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(value) };
}

/** Thrown by handlers to answer with a problem document. */
export class AcmeFailure extends Error {
  constructor(readonly response: ProtocolHttpResponse) {
    super('acme problem');
  }
}

export const fail = (...args: Parameters<typeof problem>): never => {
  throw new AcmeFailure(problem(...args));
};

export const randomId = (bytes = 16): string => {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString('base64url');
};
