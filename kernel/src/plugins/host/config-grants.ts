import type { Json, JsonSchemaObject } from '@certctl/sdk';
import { configOriginRule } from '@certctl/sdk/policy';
import type { BrokerCallContext, BrokerOp, CapabilityBroker, GrantedCapabilities } from './contracts.js';

const asObject = (v: unknown): Record<string, unknown> | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null);

/**
 * The values of the config fields a schema marks `"x-certctl-url": true`: a
 * string, or an array of strings whose `items` carry the marker. Only object
 * `properties` are walked (as for secrets), nested objects included. A value a
 * schema `default` supplies (the field's own, or an enclosing object's) is the
 * plugin author's choice, not the operator's, so it is left out even when the
 * stored config holds it (configs are stored with defaults filled in): a plugin
 * that needs its default origin must ask for it in its capabilities.
 */
export function configUrls(schema: JsonSchemaObject, config: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (node: Record<string, unknown>, value: Record<string, unknown>, enclosing: Record<string, unknown>[]) => {
    const props = asObject(node.properties);
    if (!props) return;
    const here = [asObject(node.default), ...enclosing].filter((d): d is Record<string, unknown> => d !== null);
    for (const [name, sub] of Object.entries(props)) {
      const s = asObject(sub);
      const v = value[name];
      if (!s || v === undefined || v === null) continue;
      const defaults = [s.default, ...here.map((d) => d[name])];
      if (s['x-certctl-url'] === true && typeof v === 'string') {
        if (!defaults.includes(v)) out.push(v);
      } else if (Array.isArray(v) && asObject(s.items)?.['x-certctl-url'] === true) {
        const given = new Set(defaults.flatMap((d) => (Array.isArray(d) ? d : [])));
        out.push(...v.filter((x): x is string => typeof x === 'string' && !given.has(x)));
      } else if (asObject(v)) {
        walk(s, v as Record<string, unknown>, here.map((d) => asObject(d[name])).filter((d): d is Record<string, unknown> => d !== null));
      }
    }
  };
  walk(schema, config, []);
  return out;
}

/**
 * The http host rule for the origin of an operator-configured URL, or null when
 * it grants nothing. The rule itself (and what it refuses: cloud metadata and
 * unspecified addresses, other schemes, credentials) is @certctl/sdk/policy's
 * configOriginRule, shared with the agent's broker.
 */
export function originRule(raw: string): string | null {
  const r = configOriginRule(raw);
  return 'rule' in r ? r.rule : null;
}

/** Host rules derived from an instance's config: one per distinct usable URL origin. */
export function configDerivedHosts(schema: JsonSchemaObject, config: Record<string, unknown>): string[] {
  return [...new Set(configUrls(schema, config).map(originRule).filter((r): r is string => r !== null))];
}

/**
 * Effective grants: what the manifest/operator granted plus the config-derived hosts.
 * Config only widens an http grant the plugin already holds (possibly with no hosts):
 * a plugin granted no http capability at install gets none from its config.
 */
export function withDerivedHosts(grants: GrantedCapabilities, hosts: readonly string[]): GrantedCapabilities {
  if (!hosts.length || !grants.http) return grants;
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
