import type { PluginManifest } from '@certctl/sdk';
import type { PluginEntry } from '../plugins/catalog.js';

/*
 * Protocol mounts. A manifest's mounts are checked by the SDK schema (each is one
 * of PROTOCOL_MOUNT_ROOTS or below one, so never /api, /health, /ready or
 * /.well-known/pki); here: one plugin per mount, and which plugin a path goes to.
 */

export const DEFAULT_PROTOCOL_MAX_BODY = 64 * 1024;
export const DEFAULT_PROTOCOL_TIMEOUT_MS = 30_000;

/** Why this manifest cannot be enabled beside the plugins already holding mounts, or null. */
export function mountClash(manifest: PluginManifest, claimed: ReadonlyMap<string, { id: string }>): string | null {
  for (const mount of manifest.protocol?.mounts ?? []) {
    const holder = claimed.get(mount);
    if (holder && holder.id !== manifest.id) return `mount ${mount} is already served by plugin ${holder.id}`;
  }
  return null;
}

/** Records a manifest's mounts as taken (after mountClash said they are free). */
export function claimMounts(manifest: PluginManifest, claimed: Map<string, { id: string }>): void {
  for (const mount of manifest.protocol?.mounts ?? []) claimed.set(mount, { id: manifest.id });
}

export interface MountMatch {
  mount: string;
  plugin: PluginEntry & { manifest: PluginManifest };
  /** The path below the mount: '' or starting with '/'. */
  rest: string;
}

/**
 * The enabled protocol plugin serving this path: the longest mount that equals
 * the path or is a prefix of it at a segment boundary. Read from the catalog at
 * each request, so installs, upgrades and disables apply at once.
 */
export function matchMount(plugins: readonly PluginEntry[], path: string): MountMatch | null {
  let best: MountMatch | null = null;
  for (const p of plugins) {
    if (p.kind !== 'protocol' || p.status !== 'enabled' || !p.manifest?.protocol) continue;
    for (const mount of p.manifest.protocol.mounts) {
      if (path !== mount && !path.startsWith(`${mount}/`)) continue;
      if (best && best.mount.length >= mount.length) continue;
      best = { mount, plugin: p as MountMatch['plugin'], rest: path.slice(mount.length) };
    }
  }
  return best;
}

/** Whether any enabled protocol plugin asks the TLS layer to request client certificates. */
export const wantsClientCertificates = (plugins: readonly PluginEntry[]): boolean =>
  plugins.some((p) => p.kind === 'protocol' && p.status === 'enabled' && p.manifest?.protocol?.clientCertificates === true);
