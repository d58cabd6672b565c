import zlib from 'node:zlib';
import { Header } from 'tar';

/** One raw tar entry, for building hostile archives that npm pack would never make. */
export interface TarEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO';
  body?: string | Buffer;
  linkpath?: string;
}

/** A gzip-compressed tar archive of exactly these entries. */
export function tarball(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'File';
    const body = type === 'File' ? Buffer.from(e.body ?? '') : Buffer.alloc(0);
    const h = new Header({ path: e.path, mode: type === 'Directory' ? 0o755 : 0o644, size: body.length, mtime: new Date(0), type, linkpath: e.linkpath, uid: 0, gid: 0 });
    h.encode();
    blocks.push(h.block!);
    if (body.length) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return zlib.gzipSync(Buffer.concat(blocks));
}

export interface FixturePluginOptions {
  id?: string;
  name?: string;
  version?: string;
  kind?: string;
  capabilities?: Record<string, unknown>;
  configSchema?: Record<string, unknown>;
  /** Replaces or adds manifest fields. */
  manifest?: Record<string, unknown>;
  /** Dropped from the manifest. */
  omit?: string[];
  /** Extra or replacement files, package-relative. */
  files?: Record<string, string>;
}

/** A bundled isolate entry: one self-contained ES module (what esbuild makes of a plugin). */
export const FIXTURE_ENTRY = `export default {
  kind: 'issuer',
  async issue(request) { return { status: 'failed', reason: 'fixture plugin does not sign ' + request.commonName, retryable: false }; },
};
`;

/** The package.json of a small installable issuer plugin, with overrides. */
export function fixturePackageJson(o: FixturePluginOptions = {}): Record<string, unknown> {
  const manifest: Record<string, unknown> = {
    id: o.id ?? 'acme-widgets-ca',
    kind: o.kind ?? 'issuer',
    apiVersion: 'certctl.plugin/v1',
    displayName: 'Acme Widgets CA',
    engines: { certctl: '>=0.1.0' },
    runtimes: ['isolate'],
    entry: { isolate: 'dist/plugin.js' },
    capabilities: o.capabilities ?? { http: { hosts: ['ca.widgets.example', 'ocsp.widgets.example'] }, kv: true },
    configSchema: o.configSchema ?? {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'token'],
      properties: { url: { type: 'string', format: 'uri' }, token: { type: 'string', writeOnly: true, minLength: 8 } },
    },
    features: ['revoke'],
    ...o.manifest,
  };
  for (const k of o.omit ?? []) delete manifest[k];
  return { name: o.name ?? 'certctl-plugin-acme-widgets', version: o.version ?? '1.0.0', description: 'Fixture third-party issuer', certctl: manifest };
}

/** An npm-pack-shaped .tgz of a fixture plugin. */
export function fixturePlugin(o: FixturePluginOptions = {}): Buffer {
  const files: Record<string, string> = { 'package.json': JSON.stringify(fixturePackageJson(o), null, 2), 'dist/plugin.js': FIXTURE_ENTRY, ...o.files };
  return tarball(Object.entries(files).map(([rel, body]) => ({ path: `package/${rel}`, body })));
}
