import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import type { Json, JsonSchemaObject, PluginCapabilities, PluginManifest } from '@certctl/sdk';
import type { PluginEntry } from '../../kernel/src/plugins/catalog.js';
import { compileConfigSchema, createConfigAjv } from '../../kernel/src/plugins/config-schema.js';
import { ConfigGrantsBroker } from '../../kernel/src/plugins/host/config-grants.js';
import type { BrokerCallContext, BrokerOp, CapabilityBroker } from '../../kernel/src/plugins/host/contracts.js';
import { InstanceConfigLoader, type InstanceRow } from '../../kernel/src/plugins/host/instance-loader.js';
import { sealConfig, validateConfig } from '../../kernel/src/plugins/instances/instance-config.js';
import { ConfigCipher } from '../../kernel/src/secrets/config-cipher.js';

/*
 * Config-derived http grants widen what an instance may fetch only with URLs the
 * operator named, and only for a plugin that holds an http grant at all. The path is
 * the kernel's own: the config is validated and sealed as the instance routes store it
 * (schema defaults filled in), opened by the instance loader, and the fetch goes
 * through the ConfigGrantsBroker; the inner broker records the grants it was given.
 */
describe('config-derived http grants', () => {
  const cipher = ConfigCipher.fromKey(crypto.randomBytes(32));
  const ajv = createConfigAjv();
  const fetchOp: BrokerOp = { op: 'http.fetch', request: { url: 'http://127.0.0.1:5432/' } as Json };

  function entryOf(manifest: PluginManifest, grants: PluginCapabilities): PluginEntry {
    const compiled = compileConfigSchema(ajv, manifest.configSchema);
    if ('reason' in compiled) throw new Error(compiled.reason);
    return {
      id: manifest.id, kind: manifest.kind, name: manifest.id, version: '1.0.0', description: '', source: 'installed', dir: '/nonexistent',
      status: 'enabled', reason: null, manifest, features: [], capabilities: manifest.capabilities ?? {}, grants, runtime: 'isolate',
      validateConfig: compiled.validate,
    } as PluginEntry;
  }

  /** Stores the operator's config as POST /notifiers does, then makes one fetch for that instance: the grants the broker saw. */
  async function grantsOfCall(entry: PluginEntry, operatorConfig: Record<string, unknown>): Promise<{ stored: Record<string, unknown>; hosts: string[]; http: PluginCapabilities['http'] }> {
    const sealed = sealConfig(cipher, entry.manifest!.configSchema, validateConfig(entry.validateConfig!, operatorConfig));
    const row: InstanceRow = { id: 'ntf-1', type: entry.id, config: JSON.parse(sealed.config), encrypted_config: sealed.encrypted_config, enabled: true };
    const loaded = await new InstanceConfigLoader(null as unknown as Knex, cipher).load(entry, row.id, row);
    if ('problem' in loaded) throw new Error(loaded.problem);
    const seen: BrokerCallContext[] = [];
    const inner: CapabilityBroker = { handle: async (ctx) => { seen.push(ctx); return null; } };
    const broker = new ConfigGrantsBroker(inner);
    broker.setInstanceHosts(entry.id, row.id, loaded.httpHosts);
    await broker.handle({ pluginId: entry.id, instanceId: row.id, grants: entry.grants, deadline: Date.now() + 1000 }, fetchOp);
    return { stored: row.config as Record<string, unknown>, hosts: loaded.httpHosts, http: seen[0].grants.http };
  }

  const thirdParty = (capabilities: PluginCapabilities, properties: JsonSchemaObject): PluginManifest => ({
    id: 'sneaky-notifier', kind: 'notifier', apiVersion: 'certctl.plugin/v1', engines: { certctl: '*' }, runtimes: ['isolate'], entry: { isolate: 'dist/plugin.js' },
    capabilities, configSchema: { type: 'object', additionalProperties: false, properties },
  });

  it('a schema default grants nothing, though the stored config holds it (the field\'s own default or an enclosing object\'s)', async () => {
    const manifest = thirdParty({ http: { hosts: ['alerts.widgets.example'] } }, {
      api: { type: 'string', 'x-certctl-url': true, default: 'http://127.0.0.1:5432/' },
      mirrors: { type: 'array', items: { type: 'string', 'x-certctl-url': true }, default: ['http://127.0.0.1:6379/'] },
      upstream: { type: 'object', default: { url: 'http://127.0.0.1:11211/' }, properties: { url: { type: 'string', 'x-certctl-url': true } } },
      note: { type: 'string' },
    });
    const entry = entryOf(manifest, { http: { hosts: ['alerts.widgets.example'] } });
    const nothingNamed = await grantsOfCall(entry, { note: 'hi' });
    // The defaults are stored (the instance routes store the validated config)...
    expect(nothingNamed.stored).toMatchObject({ api: 'http://127.0.0.1:5432/', mirrors: ['http://127.0.0.1:6379/'], upstream: { url: 'http://127.0.0.1:11211/' } });
    // ...but only what the operator named widens the grant.
    expect(nothingNamed.hosts).toEqual([]);
    expect(nothingNamed.http).toEqual({ hosts: ['alerts.widgets.example'] });

    const named = await grantsOfCall(entry, { api: 'https://hooks.example.test/in', mirrors: ['http://127.0.0.1:6379/', 'https://mirror.example.test/'], upstream: { url: 'http://10.0.0.7:8080/' } });
    expect(named.hosts).toEqual(['hooks.example.test:443', 'mirror.example.test:443', 'http://10.0.0.7:8080']);
    expect(named.http).toEqual({ hosts: ['alerts.widgets.example', 'hooks.example.test:443', 'mirror.example.test:443', 'http://10.0.0.7:8080'] });
  });

  it('a plugin granted no http capability gets none from its config', async () => {
    const manifest = thirdParty({ kv: true }, { api: { type: 'string', 'x-certctl-url': true } });
    const res = await grantsOfCall(entryOf(manifest, { kv: true }), { api: 'http://127.0.0.1:5432/' });
    expect(res.hosts).toEqual(['http://127.0.0.1:5432']);
    expect(res.http).toBeUndefined();
  });

  it('a URL kept as a secret (encrypted at rest) still grants its origin', async () => {
    const manifest = thirdParty({ http: { hosts: [] } }, { webhook_url: { type: 'string', writeOnly: true, 'x-certctl-url': true } });
    const res = await grantsOfCall(entryOf(manifest, { http: { hosts: [] } }), { webhook_url: 'https://hooks.slack.example/services/T0/B0/x' });
    expect(res.stored).toEqual({});
    expect(res.http).toEqual({ hosts: ['hooks.slack.example:443'] });
  });

  it('first-party notifiers that fetch ask for http in their manifests; their default endpoints are granted there', async () => {
    const manifestOf = (name: string) => (JSON.parse(fs.readFileSync(new URL(`../../plugins/notifiers/${name}/package.json`, import.meta.url), 'utf8')) as { certctl: PluginManifest }).certctl;
    for (const name of ['webhook', 'slack', 'teams', 'pagerduty', 'opsgenie']) expect(manifestOf(name).capabilities?.http, name).toBeDefined();
    const pagerduty = manifestOf('pagerduty');
    const entry = entryOf(pagerduty, pagerduty.capabilities!);
    expect((await grantsOfCall(entry, { routing_key: 'R0123456789' })).http).toEqual({ hosts: ['events.pagerduty.com'] });
    expect((await grantsOfCall(entry, { routing_key: 'R0123456789', api_url: 'http://127.0.0.1:9999' })).http).toEqual({ hosts: ['events.pagerduty.com', 'http://127.0.0.1:9999'] });
  });
});
