import { labelSettings, type Json } from '@certctl/sdk';

/** What one SCEP endpoint (the default one at /scep, or /scep/{label}) enrols with. */
export interface ScepEndpoint {
  /** null: the default endpoint. */
  label: string | null;
  issuerId: string;
  profileId: string | null;
  allowRenewal: boolean;
  /** secrets.get paths of this endpoint's challenge password, in order of preference. */
  challengePaths: string[];
}

type Raw = Record<string, Json>;
const str = (v: Json | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

/** The endpoint a label names (null: the default one); undefined when the label is not configured. */
export function endpointFor(config: Readonly<Raw>, label: string | null): ScepEndpoint | undefined {
  const pick = labelSettings(config, label);
  if (!pick) return undefined;
  return {
    label,
    issuerId: str(pick('issuer_id'))!,
    profileId: str(pick('profile_id')) ?? null,
    allowRenewal: pick('allow_renewal') !== false,
    challengePaths: label === null ? ['challenge_password'] : [`label_challenge_passwords.${label}`, 'challenge_password'],
  };
}

/**
 * `''` or `/label`, each optionally followed by `/pkiclient.exe` (the path many
 * clients append, after the original Cisco CGI); null for anything else.
 */
export function labelOfPath(path: string): { label: string | null } | null {
  const parts = path.split('/').slice(1).filter((p, i, all) => !(p === 'pkiclient.exe' && i === all.length - 1));
  if (parts.length === 0 || (parts.length === 1 && parts[0] === '')) return { label: null };
  if (parts.length === 1 && parts[0]) return { label: parts[0] };
  return null;
}
