import type { JsonWebKey } from 'node:crypto';
import type { Json, PluginContext } from '@certctl/sdk';
import { consumeNonce, issueNonce } from './nonces.js';

/*
 * ACME state in ctx.kv (plugin_kv: shared by every kernel, with TTLs, so several
 * kernels serve one endpoint; the kernel's sweep loop deletes expired rows):
 *   nonce-used:<n>  nonces already used (until the nonce expires); handing one out stores nothing (nonces.ts)
 *   acct:<id>   accounts, keyed by the JWK thumbprint of their first key
 *   key:<tp>    the account of a key that replaced the first one (key rollover)
 *   order:<id>  orders (7 days; 90 once valid), authz:<id> authorizations
 *   cert:<id>   the issued chain of an order; serial:<hex> -> order (revocation, ARI)
 *   replaced:<hex>, replacedBy:<hex>  the order that replaces a certificate (RFC 9773)
 *   rl:<kind>:<hour>:<subject>        rate-limit counters (kv.increment)
 * The manifest asks for a kv quota (capabilities.kv.maxKeys) to match.
 */

const DAY = 86_400;
/** How long a replacement claim waits for its order to be saved before others may take it over. */
const CLAIM_GRACE_MS = 60_000;

export interface Account { status: 'valid' | 'deactivated'; jwk: JsonWebKey; contact: string[]; createdAt: string; /** The EAB key id the account was bound with. */ eab?: string }
export interface Identifier { type: 'dns' | 'ip'; value: string }
export interface Order {
  account: string;
  profileKey: string | null;
  status: 'pending' | 'ready' | 'processing' | 'valid' | 'invalid';
  expires: string;
  identifiers: Identifier[];
  authorizations: string[];
  notBefore?: string;
  notAfter?: string;
  certificateId?: string;
  csrPem?: string;
  /** The ARI certID of the certificate this order replaces (RFC 9773 5). */
  replaces?: string;
  error?: { type: string; detail: string };
}
export interface Authz {
  account: string;
  order: string;
  identifier: Identifier;
  status: 'pending' | 'valid' | 'invalid';
  expires: string;
  token: string;
  /** Challenge types offered (challenge-types.ts); absent: http-01 only. */
  challenges?: ('http-01' | 'dns-01' | 'tls-alpn-01')[];
  /** The challenge the client asked to validate. */
  chosen?: 'http-01' | 'dns-01' | 'tls-alpn-01';
  validated?: string;
  error?: { type: string; detail: string };
}

const asJson = (v: unknown) => v as unknown as Json;

export class AcmeState {
  constructor(private readonly ctx: PluginContext) {}

  newNonce = () => issueNonce(this.ctx);
  /** True once per issued nonce, even for requests racing on several kernels (one atomic increment). */
  useNonce = (nonce: string) => consumeNonce(this.ctx, nonce);

  account = async (id: string) => (await this.ctx.kv.get(`acct:${id}`)) as unknown as Account | undefined;
  /** The account whose key has this thumbprint: its own id, unless a key rollover moved the key (key:<thumbprint>). */
  accountIdForKey = async (tp: string) => ((await this.ctx.kv.get(`key:${tp}`)) as { id?: string } | undefined)?.id ?? tp;
  indexKey = (tp: string, id: string) => this.ctx.kv.set(`key:${tp}`, { id });
  dropKeyIndex = (tp: string) => this.ctx.kv.delete(`key:${tp}`);
  saveAccount = (id: string, a: Account) => this.ctx.kv.set(`acct:${id}`, asJson(a));

  order = async (id: string) => (await this.ctx.kv.get(`order:${id}`)) as unknown as Order | undefined;
  saveOrder = (id: string, o: Order) => this.ctx.kv.set(`order:${id}`, asJson(o), { ttlSeconds: o.status === 'valid' ? 90 * DAY : 7 * DAY });

  authz = async (id: string) => (await this.ctx.kv.get(`authz:${id}`)) as unknown as Authz | undefined;
  saveAuthz = (id: string, a: Authz) => this.ctx.kv.set(`authz:${id}`, asJson(a), { ttlSeconds: 7 * DAY });

  chain = async (orderId: string) => (await this.ctx.kv.get(`cert:${orderId}`)) as { pem: string; certificateId: string; account: string } | undefined;
  saveChain = (orderId: string, v: { pem: string; certificateId: string; account: string }, serial: string, ttlSeconds: number) => Promise.all([
    this.ctx.kv.set(`cert:${orderId}`, asJson(v), { ttlSeconds }),
    this.ctx.kv.set(`serial:${serial}`, { order: orderId }, { ttlSeconds }),
  ]);

  serial = async (serial: string) => (await this.ctx.kv.get(`serial:${serial}`)) as { order: string } | undefined;

  /**
   * Marks the certificate with this serial as replaced by an order (RFC 9773 5),
   * false when another order holds it. The counter makes the claim atomic across
   * kernels. A holder whose order failed (invalid), or that never saved its order
   * (refused after claiming) within CLAIM_GRACE_MS, gives the claim up.
   */
  async claimReplacement(serial: string, orderId: string, retry = true): Promise<boolean> {
    const ttlSeconds = 90 * DAY;
    const now = this.ctx.clock.now();
    if ((await this.ctx.kv.increment(`replaced:${serial}`, { ttlSeconds })) === 1) {
      await this.ctx.kv.set(`replacedBy:${serial}`, { order: orderId, at: now }, { ttlSeconds });
      return true;
    }
    const holder = (await this.ctx.kv.get(`replacedBy:${serial}`)) as { order: string; at: number } | undefined;
    if (!holder || !retry) return false; // just claimed, its holder not written yet: alive
    const order = await this.order(holder.order);
    if (order ? order.status !== 'invalid' : now - holder.at < CLAIM_GRACE_MS) return false;
    // Of kernels racing to reclaim, only the one that takes the counter tries again.
    if ((await this.ctx.kv.take(`replaced:${serial}`)) === undefined) return false;
    return this.claimReplacement(serial, orderId, false);
  }
}
