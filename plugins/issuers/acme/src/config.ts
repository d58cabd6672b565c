import type { Json } from '@certctl/sdk';

/** One instance's config as the host hands it over (validated, defaults applied, secrets removed). */
export interface AcmeConfig {
  directory_url: string;
  email: string;
  terms_of_service_agreed: boolean;
  challenge_type: 'http-01' | 'dns-01';
  dns_webhook_url?: string;
  dns_propagation_seconds: number;
  eab_kid?: string;
  profile?: string;
  preferred_chain?: string;
  ari: boolean;
  ca_certificates_pem?: string;
}

const DEFAULTS = { terms_of_service_agreed: true, challenge_type: 'http-01', dns_propagation_seconds: 0, ari: true } as const;

/** The config with the schema's defaults, so a test host without a schema behaves like the kernel. */
export function acmeConfig(raw: Readonly<Record<string, Json>>): AcmeConfig {
  return { ...DEFAULTS, ...(raw as unknown as Partial<AcmeConfig>) } as AcmeConfig;
}

/**
 * kv is one store per plugin, shared by every instance: keys carry the instance id.
 * http-01 key authorizations are the exception, looked up by token alone because
 * that is all the CA's validation request carries (tokens are random, 128+ bits).
 */
export const kvKeys = {
  accountKey: (instance: string) => `account-key:${instance}`,
  account: (instance: string) => `account:${instance}`,
  order: (instance: string, orderId: string) => `order:${instance}:${orderId}`,
  issued: (instance: string, certificateId: string) => `issued:${instance}:${certificateId}`,
  http01: (token: string) => `http01:${token}`,
};
