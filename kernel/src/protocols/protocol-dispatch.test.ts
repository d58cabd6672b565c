import { describe, expect, it } from 'vitest';
import type { Ctx } from '../http/route.js';
import type { KernelServices } from '../kernel-services.js';
import { dispatchProtocol } from './protocol-dispatch.js';

/** The kernel's own answers on protocol mounts are problem documents, whatever the database does. */
describe('protocol dispatch', () => {
  const plugin = { id: 'est', kind: 'protocol', status: 'enabled', manifest: { id: 'est', kind: 'protocol', protocol: { mounts: ['/.well-known/est'] } } };
  const warnings: unknown[] = [];
  const kernel = (knex: unknown) => ({ plugins: { list: () => [plugin] }, db: { knex }, log: { warn: (o: unknown) => warnings.push(o) } }) as unknown as KernelServices;
  const ctx = (path: string) => {
    const headers: Record<string, string> = {};
    return { path, state: { requestId: 'req-1' }, set: (n: string, v: string) => { headers[n.toLowerCase()] = v; }, headers } as unknown as Ctx & { headers: Record<string, string>; body: Buffer };
  };
  const json = (c: { body: unknown }) => JSON.parse(String(c.body));

  it('a path no protocol serves is a 404 problem without touching the database', async () => {
    const c = ctx('/cmp');
    await dispatchProtocol(kernel(() => { throw new Error('must not be called'); }), c);
    expect(c.status).toBe(404);
    expect(c.headers['content-type']).toBe('application/problem+json');
    expect(json(c)).toMatchObject({ status: 404, title: 'Not Found' });
  });

  it('a failing endpoint lookup (pool exhausted, timeout) is a 503 with Retry-After, not a 500', async () => {
    const failing = () => ({ where: () => ({ first: () => Promise.reject(new Error('Knex: Timeout acquiring a connection. The pool is probably full.')) }) });
    const c = ctx('/.well-known/est/cacerts');
    await dispatchProtocol(kernel(failing), c);
    expect(c.status).toBe(503);
    expect(c.headers['retry-after']).toBe('5');
    expect(json(c)).toMatchObject({ status: 503, title: 'Service Unavailable' });
    expect(warnings).toHaveLength(1);
  });

  it('a mount without an enabled endpoint is a 404 problem', async () => {
    const none = () => ({ where: () => ({ first: () => Promise.resolve(undefined) }) });
    const c = ctx('/.well-known/est/cacerts');
    await dispatchProtocol(kernel(none), c);
    expect(c.status).toBe(404);
    expect(json(c).detail).toMatch(/not enabled/);
  });
});
