import type { Json } from '@certctl/sdk';
import { checkArgv, checkPath, DeployConfigError, type DeployCommand } from '@certctl/sdk/deploy';

export type CaddyConfig =
  | { mode: 'file'; certPath: string; keyPath: string; reload: DeployCommand | null }
  | { mode: 'api'; adminUrl: string; objectId: string };

const OBJECT_ID = /^[A-Za-z0-9_.-]{1,128}$/;

/** The admin endpoint's origin: http(s), a host, an optional port, nothing else (the plugin appends Caddy's own paths). */
function adminOrigin(value: Json | undefined): string {
  const raw = value ?? 'http://localhost:2019';
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    throw new DeployConfigError(`admin_url is not a URL: ${JSON.stringify(raw)}`);
  }
  if (!['http:', 'https:'].includes(url.protocol)) throw new DeployConfigError('admin_url must be an http or https URL');
  if (url.username || url.password || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new DeployConfigError('admin_url must be only scheme, host and port (e.g. http://localhost:2019)');
  }
  return url.origin;
}

export function readConfig(c: Readonly<Record<string, Json>>, instanceId: string | null): CaddyConfig {
  const mode = c.mode ?? 'file';
  if (mode === 'api') {
    const objectId = c.object_id ?? `certctl_${(instanceId ?? 'default').replace(/[^A-Za-z0-9_.-]/g, '_')}`;
    if (typeof objectId !== 'string' || !OBJECT_ID.test(objectId)) throw new DeployConfigError('object_id must be 1-128 letters, digits or _ . -');
    return { mode, adminUrl: adminOrigin(c.admin_url), objectId };
  }
  if (mode !== 'file') throw new DeployConfigError('mode must be file or api');
  const certPath = checkPath(c.cert_path, 'cert_path');
  const keyPath = checkPath(c.key_path, 'key_path');
  if (certPath === keyPath) throw new DeployConfigError('cert_path and key_path must be different files');
  const reload = c.reload_command === undefined || c.reload_command === null ? null : { argv: checkArgv(c.reload_command, 'reload_command') };
  return { mode, certPath, keyPath, reload };
}
