import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { runConformance, type ConformanceOptions } from '@certctl/sdk/testing';
import { discoverPluginPackages } from '../../kernel/src/plugins/discovery.js';
import { checkManifest } from '../../kernel/src/plugins/manifest-check.js';
import { WORKSPACE_PLUGINS_DIR } from '../../kernel/src/plugins/catalog.js';
import { VERSION } from '../../kernel/src/version.js';

/**
 * Every first-party plugin (plugins/<kind>s/<name>/) runs the shared conformance
 * suite for its kind. A plugin ships its setup (config, secrets, fakes for the
 * services it talks to) as `conformance.js` next to its package.json, default-
 * exporting a function that returns the ConformanceOptions minus the plugin.
 */
const log = pino({ level: 'silent' });
const firstParty = discoverPluginPackages({ workspacePluginsDir: WORKSPACE_PLUGINS_DIR, extraDirs: [], log });
// A fixture plugin that follows the same convention keeps the harness itself under test
// while plugins/ is still empty.
const FIXTURES = fileURLToPath(new URL('../fixtures/plugins-runtime/', import.meta.url));
/** `conformance.js` beside package.json, or compiled from src/conformance.ts for TypeScript plugins. */
const conformanceFile = (dir: string) => ['conformance.js', 'dist/conformance.js'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
const fixture = discoverPluginPackages({ workspacePluginsDir: null, extraDirs: [FIXTURES], log }).filter((c) => conformanceFile(c.dir));
const candidates = [...firstParty, ...fixture];

describe('first-party plugins pass the conformance suite of their kind', () => {
  it('finds the plugins to check (the fixture at least)', () => {
    expect(fixture.length).toBeGreaterThan(0);
  });
  for (const c of candidates) {
    it(path.basename(c.dir), async () => {
      const checked = checkManifest(c.pkg?.certctl, VERSION);
      expect(checked.ok, JSON.stringify(checked)).toBe(true);
      if (!checked.ok) return;
      const manifest = checked.manifest;
      const entry = manifest.entry.worker;
      expect(entry, 'a first-party plugin has a worker entry').toBeDefined();
      const setupFile = conformanceFile(c.dir);
      expect(setupFile, `${manifest.id} ships no conformance.js (or src/conformance.ts)`).toBeDefined();
      if (!setupFile) return;
      const plugin = ((await import(pathToFileURL(path.join(c.dir, entry!)).href)) as { default: unknown }).default;
      const setup = ((await import(pathToFileURL(setupFile).href)) as { default: () => Promise<Omit<ConformanceOptions, 'plugin'>> | Omit<ConformanceOptions, 'plugin'> }).default;
      const options = await setup();
      const report = await runConformance(manifest.kind as never, {
        ...options,
        plugin: plugin as never,
        pluginId: manifest.id,
        manifest: { kind: manifest.kind, features: manifest.features, configSchema: manifest.configSchema },
        grants: options.grants ?? manifest.capabilities ?? {},
      });
      expect(report.failed).toBe(0);
      expect(report.passed).toBeGreaterThan(0);
    });
  }
});
