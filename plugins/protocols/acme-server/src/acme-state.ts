import type { JsonWebKey } from 'node:crypto';
import type { Json, PluginContext } from '@certctl/sdk';
import { randomId } from './acme-http.js';

/*
 * ACME state in ctx.kv (plugin_kv: shared by every kernel, with TTLs):
 *   nonce:<n>   one-use nonces (1 h)
 *   acct:<id>   accounts, keyed by the JWK thumbprint of their first key
 *   key:<tp>    the account of a key that replaced the first one (key rollover)
 *   order:<id>  orders (7 days; 90 once valid), authz:<id> authorizations
 *   cert:<id>   the issued chain of an order; serial:<hex> -> order (revocation)
 * kv caps a plugin at 10,000 keys and has no atomic take, so two kernels can in a
 * very narrow window both accept one nonce; tables of their own are the next step.
 */

const HOUR = 3600;
const DAY = 86_400;

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
  error?: { type: string; detail: string };
}
export interface Authz {
  account: string;
  order: string;
  identifier: Identifier;
  status: 'pending' | 'valid' | 'invalid';
  expires: string;
  token: string;
  validated?: string;
  error?: { type: string; detail: string };
}

const asJson = (v: unknown) => v as unknown as Json;

export class AcmeState {
  constructor(private readonly ctx: PluginContext) {}

  async newNonce(): Promise<string> {
    const nonce = randomId(16);
    await this.ctx.kv.set(`nonce:${nonce}`, 1, { ttlSeconds: HOUR });
    return nonce;
  }

  /** True once per issued nonce. */
  async useNonce(nonce: string): Promise<boolean> {
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(nonce)) return false;
    const key = `nonce:${nonce}`;
    if ((await this.ctx.kv.get(key)) === undefined) return false;
    await this.ctx.kv.delete(key);
    return true;
  }

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
}
