import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PluginCapabilities } from '@certctl/sdk';
import { capabilityItems, selectCapabilities } from './capabilities.js';

const run = promisify(execFile);

export interface InstallCommandOptions {
  server?: string;
  apiKey?: string;
  /** `all`, `none`, or a comma list of capability names (`http,kv`). */
  grant?: string;
  caFile?: string;
}

export interface CommandIo {
  out: (line: string) => void;
  env: Record<string, string | undefined>;
  /** The npm executable (tests may point elsewhere). */
  npm?: string;
}

// A registry spec: name, @scope/name, optionally @version-or-range or @tag. Never an option.
const NPM_SPEC = /^(@[a-z0-9~][a-z0-9._~-]*\/)?[a-z0-9~][a-z0-9._~-]*(@[A-Za-z0-9._~^<>=*| +-]{1,100})?$/;

type Grant = { mode: 'all' } | { mode: 'none' } | { mode: 'list'; names: string[] };

function parseGrant(value: string | undefined): Grant {
  const v = (value ?? 'none').trim();
  if (v === 'all' || v === 'none') return { mode: v };
  const names = v.split(',').map((n) => n.trim()).filter(Boolean);
  if (!names.length) throw new Error('--grant must be all, none, or a comma list of capability names (http,kv,events,fs,exec)');
  return { mode: 'list', names };
}

/**
 * The package to upload: a .tgz file as it is; a folder or an npm registry spec
 * through `npm pack` (argument array, no shell, lifecycle scripts off so packing
 * runs none of the package's code on this machine).
 */
async function packageArchive(source: string, io: CommandIo): Promise<{ archive: Buffer; from: string }> {
  const st = fs.statSync(source, { throwIfNoEntry: false });
  if (st?.isFile()) return { archive: fs.readFileSync(source), from: source };
  let spec: string;
  if (st?.isDirectory()) spec = path.resolve(source);
  else if (NPM_SPEC.test(source)) spec = source;
  else throw new Error(`"${source}" is neither a .tgz file, a folder, nor an npm package name`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pack-'));
  try {
    const { stdout } = await run(io.npm ?? 'npm', ['pack', spec, '--pack-destination', tmp, '--json', '--ignore-scripts'], { timeout: 180_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, ...io.env } });
    const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; id?: string }[];
    const file = packed[0]?.filename;
    if (!file) throw new Error('npm pack printed no file name');
    return { archive: fs.readFileSync(path.join(tmp, path.basename(file))), from: packed[0].id ?? spec };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`npm pack ${spec} failed: ${(e.stderr?.trim().split('\n').slice(-3).join(' ') || e.message).slice(0, 500)}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

interface ApiAnswer {
  status: number;
  body: any;
}

function apiRequest(base: string, method: string, apiPath: string, opts: { apiKey?: string; ca?: string; body: Buffer; contentType: string }): Promise<ApiAnswer> {
  const url = new URL(apiPath, base.endsWith('/') ? base : `${base}/`);
  const headers: Record<string, string> = { 'content-type': opts.contentType, 'content-length': String(opts.body.length), accept: 'application/json' };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const client = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { method, headers, ...(url.protocol === 'https:' && opts.ca ? { ca: opts.ca } : {}), timeout: 300_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : null;
        } catch {
          // Not JSON: keep the text for the error message.
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('the server did not answer in time')));
    req.on('error', (err) => reject(new Error(`cannot reach ${url.origin}: ${err.message}`)));
    req.end(opts.body);
  });
}

const failure = (what: string, res: ApiAnswer) =>
  new Error(`${what} failed (${res.status}): ${res.body?.error?.message ?? (typeof res.body === 'string' ? res.body.slice(0, 300) : 'no details')}`);

const describeCapabilities = (c: PluginCapabilities) => (capabilityItems(c).length ? capabilityItems(c).join(', ') : '(none)');

/**
 * `certctl plugins install <file.tgz|folder|npm-name>`: packs if needed, uploads
 * to POST /api/v1/plugins, shows what the plugin asks for, and grants according
 * to --grant (none by default: the operator reviews first).
 */
export async function installPluginCommand(source: string, opts: InstallCommandOptions, io: CommandIo): Promise<{ id: string; status: string }> {
  const server = opts.server ?? io.env.CERTCTL_SERVER_URL;
  if (!server) throw new Error('no server: pass --server https://host:8443 or set CERTCTL_SERVER_URL');
  const apiKey = opts.apiKey ?? io.env.CERTCTL_API_KEY;
  const caFile = opts.caFile ?? io.env.CERTCTL_CA_FILE;
  const ca = caFile ? fs.readFileSync(caFile, 'utf8') : undefined;
  const grant = parseGrant(opts.grant);

  const { archive, from } = await packageArchive(source, io);
  io.out(`uploading ${from} (${archive.length} bytes) to ${server}`);
  const installed = await apiRequest(server, 'POST', 'api/v1/plugins', { apiKey, ca, body: archive, contentType: 'application/gzip' });
  if (installed.status !== 201) throw failure('install', installed);
  const p = installed.body as { id: string; kind: string; version: string; status: string; requested_capabilities: PluginCapabilities };
  io.out(`installed ${p.id} ${p.version} (${p.kind} plugin), status ${p.status}`);
  io.out(`it asks for: ${describeCapabilities(p.requested_capabilities)}`);

  if (grant.mode === 'none') {
    io.out(`nothing granted yet; review and grant with --grant, or POST /api/v1/plugins/${p.id}/grant`);
    return { id: p.id, status: p.status };
  }
  let capabilities: PluginCapabilities;
  try {
    capabilities = grant.mode === 'all' ? p.requested_capabilities : selectCapabilities(p.requested_capabilities, grant.names);
  } catch (err) {
    throw new Error(`installed ${p.id}, but granted nothing: ${(err as Error).message}`);
  }
  const granted = await apiRequest(server, 'POST', `api/v1/plugins/${encodeURIComponent(p.id)}/grant`, { apiKey, ca, body: Buffer.from(JSON.stringify({ capabilities })), contentType: 'application/json' });
  if (granted.status !== 200) throw failure('grant', granted);
  io.out(`granted: ${describeCapabilities(granted.body.granted_capabilities)}; status ${granted.body.status}`);
  return { id: p.id, status: granted.body.status };
}
