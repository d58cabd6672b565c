import net from 'node:net';
import type { Json, JsonSchemaObject } from '@certctl/sdk';
import { classifyAddress, IP_LITERAL_ONLY_CLASSES } from '@certctl/sdk/policy';
import type { BrokerCallContext, BrokerOp, CapabilityBroker, GrantedCapabilities } from './contracts.js';

const asObject = (v: unknown): Record<string, unknown> | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null);

/**
 * The values of the config fields a schema marks `"x-certctl-url": true`: a
 * string, or an array of strings whose `items` carry the marker. Only object
 * `properties` are walked (as for secrets), nested objects included.
 */
export function configUrls(schema: JsonSchemaObject, config: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (node: Record<string, unknown>, value: Record<string, unknown>) => {
    const props = asObject(node.properties);
    if (!props) return;
    for (const [name, sub] of Object.entries(props)) {
      const s = asObject(sub);
      const v = value[name];
      if (!s || v === undefined || v === null) continue;
      if (s['x-certctl-url'] === true && typeof v === 'string') out.push(v);
      else if (Array.isArray(v) && asObject(s.items)?.['x-certctl-url'] === true) out.push(...v.filter((x): x is string => typeof x === 'string'));
      else if (asObject(v)) walk(s, v as Record<string, unknown>);
    }
  };
  walk(schema, config);
  return out;
}

/**
 * The http host rule (see @certctl/sdk/policy host-allowlist) for the origin of
 * an operator-configured URL: scheme, exact host and port, so `https://a.test/x`
 * grants https to a.test:443 only and `http://127.0.0.1:8080/h` plain http to
 * that address and port. Loopback and private addresses are allowed because the
 * operator named them; cloud metadata and unspecified addresses never are, and
 * anything that is not an absolute http(s) URL without credentials grants nothing.
 */
export function originRule(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  if (url.username || url.password || !url.hostname) return null;
  const bare = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(bare) && IP_LITERAL_ONLY_CLASSES.has(classifyAddress(bare))) return null;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.protocol === 'http:' ? 'http://' : ''}${url.hostname}:${port}`;
}

/** Host rules derived from an instance's config: one per distinct usable URL origin. */
export function configDerivedHosts(schema: JsonSchemaObject, config: Record<string, unknown>): string[] {
  return [...new Set(configUrls(schema, config).map(originRule).filter((r): r is string => r !== null))];
}

/** Effective grants: what the manifest/operator granted plus the config-derived hosts. */
export function withDerivedHosts(grants: GrantedCapabilities, hosts: readonly string[]): GrantedCapabilities {
  if (!hosts.length) return grants;
  return { ...grants, http: { hosts: [...new Set([...(grants.http?.hosts ?? []), ...hosts])] } };
}

/**
 * Wraps the kernel's broker so an http.fetch of a call for an instance also
 * sees the hosts its config names. Runners build one BrokerCallContext per
 * call; the widened copy is kept per context so per-call broker state (log
 * limits) stays attached to one object.
 */
export class ConfigGrantsBroker implements CapabilityBroker {
  /** Latest derived hosts per plugin instance, set by the host before each call. */
  private readonly hosts = new Map<string, readonly string[]>();
  private readonly widened = new WeakMap<BrokerCallContext, BrokerCallContext>();

  constructor(private readonly inner: CapabilityBroker) {}

  private static key = (pluginId: string, instanceId: string) => `${pluginId}\u0000${instanceId}`;

  setInstanceHosts(pluginId: string, instanceId: string | null, hosts: readonly string[]): void {
    if (instanceId === null) return;
    const key = ConfigGrantsBroker.key(pluginId, instanceId);
    if (hosts.length) this.hosts.set(key, hosts);
    else this.hosts.delete(key);
  }

  handle(ctx: BrokerCallContext, op: BrokerOp): Promise<Json> {
    if (op?.op !== 'http.fetch' || ctx.instanceId === null) return this.inner.handle(ctx, op);
    const extra = this.hosts.get(ConfigGrantsBroker.key(ctx.pluginId, ctx.instanceId));
    if (!extra) return this.inner.handle(ctx, op);
    let wide = this.widened.get(ctx);
    if (!wide) {
      wide = { ...ctx, grants: withDerivedHosts(ctx.grants ?? {}, extra) };
      this.widened.set(ctx, wide);
    }
    return this.inner.handle(wide, op);
  }
}
