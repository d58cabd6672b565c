/** The one way the dashboard talks to the kernel: JSON over fetch with the session's API key. */

export interface ApiErrorBody {
  code: string;
  message: string;
  details?: { path: string; message: string }[];
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details: { path: string; message: string }[] = []) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ListEnvelope<T> {
  data: T[];
  total: number;
  page: number;
  per_page: number;
  next_cursor: string | null;
}

export type Query = Record<string, string | number | undefined | null>;

let currentKey: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setApiKey(key: string | null): void {
  currentKey = key;
}

export function getApiKey(): string | null {
  return currentKey;
}

/** Called when the kernel answers 401 to a request made with the session key (expired or revoked). */
export function setUnauthorizedHandler(fn: (() => void) | null): void {
  onUnauthorized = fn;
}

export function queryString(q: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

async function errorFrom(res: Response): Promise<ApiError> {
  let body: { error?: ApiErrorBody } | null = null;
  try {
    body = (await res.json()) as { error?: ApiErrorBody };
  } catch {
    body = null;
  }
  const e = body?.error;
  return new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? res.statusText ?? 'Request failed', e?.details ?? []);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  query?: Query;
  /** Send a raw body (file upload) with this content type instead of JSON. */
  raw?: { data: Blob | ArrayBuffer; type: string };
  key?: string | null;
  signal?: AbortSignal;
}

export async function request<T = unknown>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const key = opts.key === undefined ? currentKey : opts.key;
  if (key) headers.Authorization = `Bearer ${key}`;
  let body: BodyInit | undefined;
  if (opts.raw) {
    headers['Content-Type'] = opts.raw.type;
    body = opts.raw.data;
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(path + queryString(opts.query), { method: opts.method ?? 'GET', headers, body, signal: opts.signal });
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && key && key === currentKey) onUnauthorized?.();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

/** Fetches a non-JSON resource (exports) as a Blob, with the session key. */
export async function download(path: string, query?: Query, init: { method?: string; body?: unknown } = {}): Promise<Blob> {
  const headers: Record<string, string> = {};
  if (currentKey) headers.Authorization = `Bearer ${currentKey}`;
  if (init.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path + queryString(query), { method: init.method ?? 'GET', headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  if (!res.ok) throw await errorFrom(res);
  return res.blob();
}

export const api = {
  post: <T = unknown>(path: string, body?: unknown) => request<T>(path, { method: 'POST', body: body ?? {} }),
  put: <T = unknown>(path: string, body: unknown) => request<T>(path, { method: 'PUT', body }),
  del: <T = unknown>(path: string) => request<T>(path, { method: 'DELETE' }),
};

/** Human text for any thrown value. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}
