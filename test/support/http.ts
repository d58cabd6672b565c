import https from 'node:https';

export interface ApiResponse<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
  raw: Buffer;
}

export interface RequestOptions {
  key?: string | null;
  body?: unknown;
  /** Send this exact payload (bad JSON, huge bodies); overrides body. */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

/**
 * A small HTTPS client that verifies the server against its own (self-signed)
 * certificate, as a careful operator would, instead of turning verification off.
 */
export class ApiClient {
  private readonly agent: https.Agent;

  constructor(readonly baseUrl: string, ca: string, readonly defaultKey: string | null = null) {
    this.agent = new https.Agent({ ca, keepAlive: true, maxSockets: 16 });
  }

  withKey(key: string | null): ApiClient {
    const c = new ApiClient(this.baseUrl, '', key);
    (c as unknown as { agent: https.Agent }).agent = this.agent;
    return c;
  }

  request<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    const url = new URL(path, this.baseUrl);
    const key = opts.key === undefined ? this.defaultKey : opts.key;
    const payload = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (key) headers.authorization ??= `Bearer ${key}`;
    if (payload !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString('utf8');
          let body: unknown = text;
          if (String(res.headers['content-type'] ?? '').includes('json') && text) {
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body as T, text, raw });
        });
      });
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  get<T = any>(path: string, opts?: RequestOptions) { return this.request<T>('GET', path, opts); }
  post<T = any>(path: string, body?: unknown, opts?: RequestOptions) { return this.request<T>('POST', path, { ...opts, body }); }
  put<T = any>(path: string, body?: unknown, opts?: RequestOptions) { return this.request<T>('PUT', path, { ...opts, body }); }
  delete<T = any>(path: string, opts?: RequestOptions) { return this.request<T>('DELETE', path, opts); }

  close(): void {
    this.agent.destroy();
  }
}
