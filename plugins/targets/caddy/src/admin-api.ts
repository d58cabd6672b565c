import type { HttpResponse, PluginContext } from '@certctl/sdk';

/**
 * The parts of Caddy's admin API the plugin uses (https://caddyserver.com/docs/api):
 * the config tree under /config/, objects addressed by their "@id" under /id/,
 * and the PEM loader at apps.tls.certificates.load_pem, whose entries are
 * { certificate, key, tags }. Caddy applies every change as a whole new config
 * and keeps the old one if loading fails, so a refused certificate leaves the
 * server as it was.
 */
export const LOAD_PEM_PATH = '/config/apps/tls/certificates/load_pem';

export interface LoadPemEntry {
  '@id': string;
  certificate: string;
  key: string;
  tags: string[];
}

export class CaddyApiError extends Error {
  override name = 'CaddyApiError';
}

export class CaddyAdmin {
  constructor(private readonly ctx: PluginContext, private readonly origin: string) {}

  private async send(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<HttpResponse> {
    const left = this.ctx.clock.deadline() - this.ctx.clock.now();
    try {
      return await this.ctx.http.fetch({
        url: `${this.origin}${path}`, method,
        headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        timeoutMs: Math.max(1_000, Math.min(15_000, left - 500)),
      });
    } catch (err) {
      throw new CaddyApiError(`cannot reach the Caddy admin API at ${this.origin}: ${(err as Error).message}`);
    }
  }

  private static problem(what: string, res: HttpResponse): CaddyApiError {
    let detail = res.body;
    try {
      detail = (JSON.parse(res.body) as { error?: string }).error ?? res.body;
    } catch { /* not JSON: keep the text */ }
    return new CaddyApiError(`${what}: Caddy answered ${res.status}${detail ? `: ${String(detail).trim().slice(0, 400)}` : ''}`);
  }

  /** The object with this @id, or null when Caddy does not know the id. */
  async get(id: string): Promise<LoadPemEntry | null> {
    const res = await this.send('GET', `/id/${encodeURIComponent(id)}`);
    if (res.status === 404) return null;
    if (res.status !== 200) throw CaddyAdmin.problem(`reading ${id}`, res);
    const value = JSON.parse(res.body) as LoadPemEntry | null;
    return value && typeof value === 'object' ? value : null;
  }

  /** Replaces the object with entry['@id'] when it exists, else adds it to load_pem (creating the path when needed). */
  async put(entry: LoadPemEntry, exists: boolean): Promise<void> {
    if (exists) {
      const res = await this.send('PATCH', `/id/${encodeURIComponent(entry['@id'])}`, entry);
      if (res.status !== 200) throw CaddyAdmin.problem(`replacing ${entry['@id']}`, res);
      return;
    }
    const list = await this.send('GET', LOAD_PEM_PATH);
    const isArray = list.status === 200 && Array.isArray(JSON.parse(list.body || 'null'));
    // POST appends to an existing array; PUT creates the missing path (and refuses to overwrite one).
    const res = isArray ? await this.send('POST', LOAD_PEM_PATH, entry) : await this.send('PUT', LOAD_PEM_PATH, [entry]);
    if (res.status !== 200) throw CaddyAdmin.problem(`adding ${entry['@id']}`, res);
  }

  async remove(id: string): Promise<void> {
    const res = await this.send('DELETE', `/id/${encodeURIComponent(id)}`);
    if (res.status !== 200 && res.status !== 404) throw CaddyAdmin.problem(`removing ${id}`, res);
  }
}
