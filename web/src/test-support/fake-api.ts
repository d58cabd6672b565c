import { vi } from 'vitest';

export interface FakeCall {
  method: string;
  url: URL;
  body: unknown;
  headers: Record<string, string>;
}

/**
 * Replaces fetch with a router of canned JSON answers, recording every call.
 * `routes` maps "METHOD /path" to a handler returning [status, body].
 */
export function fakeApi(routes: Record<string, (call: FakeCall) => [number, unknown]>) {
  const calls: FakeCall[] = [];
  const fetchMock = vi.fn(async (input: string, init: RequestInit = {}) => {
    const url = new URL(input, 'https://certctl.test');
    const method = init.method ?? 'GET';
    const headers = (init.headers ?? {}) as Record<string, string>;
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : init.body;
    const call = { method, url, body, headers };
    calls.push(call);
    const handler = routes[`${method} ${url.pathname}`];
    const [status, payload] = handler ? handler(call) : [404, { error: { code: 'route_not_found', message: 'No such route' } }];
    return new Response(status === 204 ? null : JSON.stringify(payload), { status, headers: { 'content-type': 'application/json' } });
  });
  vi.stubGlobal('fetch', fetchMock);
  return { calls, fetchMock };
}

export const envelope = (data: unknown[], extra: Record<string, unknown> = {}) => ({ data, total: data.length, page: 1, per_page: 25, next_cursor: null, ...extra });

export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}
