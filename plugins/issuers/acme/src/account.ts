import crypto from 'node:crypto';
import acme from 'acme-client';
import type { PluginContext } from '@certctl/sdk';
import { kvKeys, type AcmeConfig } from './config.js';

const instanceOf = (ctx: PluginContext) => ctx.instanceId ?? 'default';

/**
 * The account's private key: the operator's (secret `account_key_pem`, stored
 * encrypted by the kernel) or one this plugin generated on first use and keeps in
 * its kv store. kv rows are plain JSON in the database, so operators who treat the
 * account key as sensitive should set account_key_pem (see docs/acme-issuer.md).
 */
async function accountKey(ctx: PluginContext): Promise<{ pem: string; source: 'secret' | 'kv' }> {
  const configured = await ctx.secrets.get('account_key_pem');
  if (configured) {
    try {
      crypto.createPrivateKey(configured);
    } catch {
      throw Object.assign(new Error('account_key_pem is not a usable PEM private key'), { operator: true });
    }
    return { pem: configured, source: 'secret' };
  }
  const key = kvKeys.accountKey(instanceOf(ctx));
  const kept = await ctx.kv.get(key);
  if (typeof kept === 'string') return { pem: kept, source: 'kv' };
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await ctx.kv.set(key, pem);
  ctx.log.info('generated an ACME account key', { instance_id: instanceOf(ctx) });
  return { pem, source: 'kv' };
}

const thumbprint = (pem: string) => crypto.createHash('sha256').update(crypto.createPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 32);

/**
 * An acme-client Client with a registered account. The account URL is kept in kv
 * under the directory URL and key it belongs to, so a changed config registers
 * again instead of reusing a stale account. Registering is idempotent at the CA
 * (an existing account for the key is returned), so a lost kv entry costs one request.
 */
export async function accountClient(ctx: PluginContext, config: AcmeConfig): Promise<acme.Client> {
  const key = await accountKey(ctx);
  const hmacKey = config.eab_kid ? await ctx.secrets.get('eab_hmac_key') : undefined;
  const eab = config.eab_kid && hmacKey ? { externalAccountBinding: { kid: config.eab_kid, hmacKey } } : {};
  const bindTo = `${config.directory_url}#${thumbprint(key.pem)}`;
  const cachedKey = kvKeys.account(instanceOf(ctx));
  const cached = (await ctx.kv.get(cachedKey)) as { for?: string; url?: string } | undefined;
  if (cached?.for === bindTo && cached.url) {
    return new acme.Client({ directoryUrl: config.directory_url, accountKey: key.pem, accountUrl: cached.url, ...eab });
  }
  const client = new acme.Client({ directoryUrl: config.directory_url, accountKey: key.pem, ...eab });
  await client.createAccount({ termsOfServiceAgreed: config.terms_of_service_agreed, contact: [`mailto:${config.email}`] });
  await ctx.kv.set(cachedKey, { for: bindTo, url: client.getAccountUrl() });
  ctx.log.info('ACME account ready', { account_url: client.getAccountUrl(), key_source: key.source, eab: Boolean(eab.externalAccountBinding) });
  return client;
}
