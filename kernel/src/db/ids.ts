import { pooledRandomBytes } from '../crypto/random-pool.js';

/** Readable prefixed ids: mc-3f9c1a2b7d4e5f60. The prefix names the resource kind. */
export const ID_PREFIXES = {
  certificate: 'mc',
  version: 'cv',
  issuer: 'iss',
  target: 'tgt',
  notifier: 'ntf',
  agent: 'agent',
  agentGroup: 'ag',
  profile: 'prof',
  policy: 'pol',
  violation: 'pv',
  renewalPolicy: 'rp',
  owner: 'owner',
  team: 'team',
  job: 'job',
  notification: 'notif',
  audit: 'audit',
  apiKey: 'key',
  role: 'role',
  grant: 'grant',
  discovered: 'dc',
  discoveryScan: 'dscan',
  protocolEndpoint: 'pe',
  approval: 'apr',
  certificateKey: 'ck',
  revocation: 'rev',
  bulkRevocation: 'bulk-rev',
  ocspResponder: 'ocsp',
  ca: 'ca',
  raKey: 'ra',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

export function newId(kind: IdKind): string {
  return `${ID_PREFIXES[kind]}-${pooledRandomBytes(8).toString('hex')}`;
}

/**
 * The same id made by the database, for rows an INSERT ... SELECT creates in bulk
 * (one per row, so no id list has to travel). random() is volatile, so each row
 * gets its own; 64 bits, as newId. Plain SQL: PGlite has no pgcrypto.
 */
export function newIdSql(kind: IdKind): string {
  return `('${ID_PREFIXES[kind]}-' || substr(md5(random()::text || clock_timestamp()::text), 1, 16))`;
}

/** Client-chosen ids (mc-api-prod) must look like ours: lowercase, digits, dashes. */
export const ID_PATTERN = '^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$';
