import { createHash } from 'node:crypto';
import type { Json } from '@certctl/sdk';
import { thenCaa } from './acme-caa.js';
import { dnsClient, dnsProblem, failure, HOST, type Outcome } from './acme-resolve.js';
import { parseLookupOptions } from './acme-validation-request.js';

/*
 * ACME dns-01 validation (RFC 8555 8.4) for protocol plugins (ctx.issuance.checkDns01):
 * one TXT query for _acme-challenge.<name> through the endpoint's DNS servers (or the
 * system's), matched against base64url(SHA-256(keyAuthorization)). Only a query is
 * sent, never a connection, and the answer is only "matched or not".
 */

/** TXT records looked at: a zone may hold a few stale values beside the current one. */
const MAX_RECORDS = 32;

export async function checkDns01(raw: Json, deadline: number): Promise<Outcome | { problem: string }> {
  const parsed = parseLookupOptions(raw);
  if (typeof parsed === 'string') return { problem: parsed };
  const { name, wildcard } = parsed.fields;
  const { keyAuthorization, resolvers, caa } = parsed.options;
  // The base name of a wildcard: the plugin strips "*." (RFC 8555 7.1.3).
  if (typeof name !== 'string' || name.length > 240 || !HOST.test(name)) return { problem: 'name must be a DNS name (without a wildcard label)' };
  if (wildcard !== undefined && typeof wildcard !== 'boolean') return { problem: 'wildcard must be a boolean' };

  const record = `_acme-challenge.${name}`;
  const expected = createHash('sha256').update(keyAuthorization).digest('base64url');
  let values: string[];
  try {
    const txt = await withDeadline(dnsClient(resolvers).resolveTxt(record), deadline);
    // A TXT record may be split into several strings; together they are one value.
    values = txt.slice(0, MAX_RECORDS).map((chunks) => chunks.join(''));
  } catch (err) {
    return dnsProblem(record, 'TXT', err);
  }
  if (values.includes(expected)) return thenCaa({ ok: true }, name, wildcard === true, caa, resolvers);
  return failure('incorrectResponse', `no TXT record at ${record} matches the key authorization (${values.length} found)`);
}

function withDeadline<T>(p: Promise<T>, deadline: number): Promise<T> {
  const ms = Math.max(500, Math.min(10_000, deadline - Date.now() - 500));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
