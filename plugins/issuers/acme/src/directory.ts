import acme from 'acme-client';
import type { RenewalInfo } from '@certctl/sdk';
import type { AcmeConfig } from './config.js';
import { ariCertId } from './der.js';

export interface AcmeDirectory {
  newNonce?: string;
  newAccount?: string;
  newOrder?: string;
  renewalInfo?: string;
  meta?: { profiles?: Record<string, string>; externalAccountRequired?: boolean; termsOfService?: string };
}

/** The CA's directory (inside a call scope: see transport.ts). */
export async function readDirectory(config: AcmeConfig): Promise<AcmeDirectory> {
  const res = await acme.axios.get(config.directory_url, { responseType: 'json' });
  if (res.status !== 200) throw new Error(`reading the ACME directory returned error ${res.status}: ${config.directory_url}`);
  const dir = res.data as AcmeDirectory;
  if (!dir || typeof dir !== 'object' || typeof dir.newOrder !== 'string' || typeof dir.newNonce !== 'string') throw new Error(`${config.directory_url} is not an ACME directory (no newNonce/newOrder)`);
  return dir;
}

/** Why this CA cannot serve this config, or null. Checked before any order. */
export function directoryProblem(dir: AcmeDirectory, config: AcmeConfig, hasEab: boolean): string | null {
  if (config.profile) {
    const offered = Object.keys(dir.meta?.profiles ?? {});
    if (!offered.includes(config.profile)) return `the CA does not offer the ACME profile "${config.profile}" (offered: ${offered.join(', ') || 'none'})`;
  }
  if (dir.meta?.externalAccountRequired && !hasEab) return 'the CA requires external account binding: set eab_kid and eab_hmac_key';
  return null;
}

const parseRetryAfter = (value: unknown): number | undefined => {
  if (typeof value !== 'string' || !value) return undefined;
  const secs = /^\d+$/.test(value) ? Number(value) : Math.round((Date.parse(value) - Date.now()) / 1000);
  return Number.isFinite(secs) && secs > 0 ? secs : undefined;
};

/**
 * ACME Renewal Information (RFC 9773): GET {renewalInfo}/{certID}, unauthenticated.
 * null when ARI is off or the CA does not offer it; the kernel then schedules the
 * renewal from its own policy.
 */
export async function fetchRenewalInfo(config: AcmeConfig, certificatePem: string): Promise<RenewalInfo | null> {
  if (!config.ari) return null;
  const dir = await readDirectory(config);
  if (!dir.renewalInfo) return null;
  const res = await acme.axios.get(`${dir.renewalInfo.replace(/\/+$/, '')}/${ariCertId(certificatePem)}`, { responseType: 'json' });
  if (res.status !== 200) throw new Error(`the CA answered renewalInfo with HTTP ${res.status}`);
  const body = res.data as { suggestedWindow?: { start?: unknown; end?: unknown }; explanationURL?: unknown };
  const start = Date.parse(String(body?.suggestedWindow?.start));
  const end = Date.parse(String(body?.suggestedWindow?.end));
  if (Number.isNaN(start) || Number.isNaN(end) || end < start) throw new Error('the CA sent a renewalInfo without a valid suggestedWindow');
  const retryAfterSeconds = parseRetryAfter(res.headers['retry-after']);
  return {
    suggestedWindow: { start: new Date(start).toISOString(), end: new Date(end).toISOString() },
    ...(retryAfterSeconds ? { retryAfterSeconds } : {}),
    ...(typeof body.explanationURL === 'string' ? { explanationUrl: body.explanationURL } : {}),
  };
}
