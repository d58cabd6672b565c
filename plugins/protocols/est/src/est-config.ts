import { labelSettings, type Json } from '@certctl/sdk';

export type EstAuth = 'basic' | 'client-certificate' | 'basic-or-client-certificate';
export type CsrAttributes = 'none' | 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072';

/** What one EST endpoint (the default one, or a label) enrols with. */
export interface EstEndpoint {
  /** null: the default endpoint at /.well-known/est/<operation>. */
  label: string | null;
  issuerId: string;
  profileId: string | null;
  auth: EstAuth;
  username: string;
  csrAttributes: CsrAttributes;
  serverKeygen: boolean;
  clientCaPem: string | null;
  /** secrets.get path of this endpoint's basic password, and of the fallback. */
  passwordPaths: string[];
}

type Raw = Record<string, Json>;
const str = (v: Json | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

/** The endpoint a label names (null: the default one); undefined when the label is not configured. */
export function endpointFor(config: Readonly<Raw>, label: string | null): EstEndpoint | undefined {
  const pick = labelSettings(config, label);
  if (!pick) return undefined;
  return {
    label,
    issuerId: str(pick('issuer_id'))!,
    profileId: str(pick('profile_id')) ?? null,
    auth: (str(pick('auth')) ?? 'basic') as EstAuth,
    username: str(pick('username')) ?? 'est',
    csrAttributes: (str(pick('csr_attributes')) ?? 'none') as CsrAttributes,
    serverKeygen: pick('server_keygen') === true,
    clientCaPem: str(config.client_ca_pem) ?? null,
    passwordPaths: label === null ? ['password'] : [`label_passwords.${label}`, 'password'],
  };
}
