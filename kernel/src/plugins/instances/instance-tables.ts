import type { PluginKind } from '@certctl/sdk';

/**
 * Where the instances of each plugin kind live: a row's `type` names its plugin.
 * Kinds without a table (discovery) run without an instance. `noun` is how
 * messages name a row.
 */
export const INSTANCE_TABLES: Partial<Record<PluginKind, { table: string; noun: string }>> = {
  issuer: { table: 'issuers', noun: 'issuer' },
  target: { table: 'targets', noun: 'target' },
  notifier: { table: 'notifiers', noun: 'notifier' },
  protocol: { table: 'protocol_endpoints', noun: 'protocol endpoint' },
};

/** The instance table of a kind, if it has one. */
export const instanceTable = (kind: PluginKind | null | undefined): string | undefined => (kind ? INSTANCE_TABLES[kind]?.table : undefined);
