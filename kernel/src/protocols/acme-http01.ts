import type { RouteDef } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { appError } from '../errors.js';
import { PluginKv } from '../plugins/broker/plugin-kv.js';

/** The first-party ACME issuer plugin's id (plugins/issuers/acme), whose kv holds the answers. */
const ACME_PLUGIN_ID = 'acme';
/** ACME tokens are base64url with at least 128 bits of entropy (RFC 8555 section 8.1). */
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

/**
 * The http-01 responder for the ACME issuer plugin. While an order is open the
 * plugin keeps each challenge's key authorization in its kv store under
 * `http01:{token}` (with a TTL); the CA fetches it here, without a key, as RFC 8555
 * section 8.3 requires. The route reads only that plugin's kv and only that key
 * shape, so it can disclose nothing but live key authorizations, which are public
 * by design. Several kernels share the database, so any of them can answer.
 */
export function acmeHttp01Routes(k: KernelServices): RouteDef[] {
  let kv: PluginKv | null = null;
  return [{
    method: 'GET', path: '/.well-known/acme-challenge/:token', access: 'public', tag: 'protocols',
    summary: 'ACME http-01 challenge answers for the ACME issuer plugin (key authorization as text/plain)',
    response: { contentType: 'text/plain', description: 'The key authorization for the token' },
    handler: async (ctx, { params }) => {
      const token = params.token;
      const value = TOKEN.test(token) ? await (kv ??= new PluginKv(k.db.knex)).get(ACME_PLUGIN_ID, `http01:${token}`) : undefined;
      if (typeof value !== 'string') throw appError('NOT_FOUND', 'No ACME challenge is open for this token');
      ctx.set('cache-control', 'no-store');
      ctx.type = 'text/plain';
      ctx.body = value;
    },
  }];
}
