import type { CaEnsureRequest, CaKeyAlgorithm, Json } from '@certctl/sdk';

/** An instance's config as the host hands it over (validated, defaults applied). */
export interface LocalCaConfig {
  mode: 'self-signed' | 'sub-ca';
  subject: string;
  key_algorithm: CaKeyAlgorithm;
  ca_validity_days: number;
  default_ttl_days: number;
  max_ttl_days: number;
}

const DEFAULTS: LocalCaConfig = { mode: 'self-signed', subject: 'CN=certctl Local CA', key_algorithm: 'ECDSA-P256', ca_validity_days: 3650, default_ttl_days: 90, max_ttl_days: 397 };

/** The config with the schema's defaults, so a plugin test host without a schema behaves like the kernel. */
export function localCaConfig(raw: Readonly<Record<string, Json>>): LocalCaConfig {
  return { ...DEFAULTS, ...(raw as Partial<LocalCaConfig>) };
}

/** Which CA this instance signs with: a root the kernel makes for it, or the operator's sub-CA. */
export function caRequestFor(config: LocalCaConfig): CaEnsureRequest {
  if (config.mode === 'sub-ca') return { source: 'configured' };
  return { source: 'generate', subject: config.subject, keyAlgorithm: config.key_algorithm, validityDays: config.ca_validity_days };
}
