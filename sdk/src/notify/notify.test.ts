import { describe, expect, it } from 'vitest';
import type { NotifyRequest } from '../contract.js';
import { createTestHost } from '../testing/index.js';
import { alertKeyOf, notificationFacts, postJson, resultOfHttpStatus, truncate } from './index.js';

const req: NotifyRequest = {
  notificationId: 'notif-1', type: 'ExpirationWarning', severity: 'warning', subject: 's', message: 'm', recipients: [],
  certificate: { id: 'mc-1', commonName: 'a.example.com', expiresAt: '2030-01-01T00:00:00.000Z', status: 'Expiring' },
};

describe('@certctl/sdk/notify', () => {
  it('maps HTTP statuses: 2xx sent, 408/429/5xx retryable, other 4xx and 3xx final', () => {
    expect(resultOfHttpStatus('x', 200)).toEqual({ status: 'sent' });
    expect(resultOfHttpStatus('x', 202)).toEqual({ status: 'sent' });
    for (const s of [408, 429, 500, 502, 503]) expect(resultOfHttpStatus('x', s)).toMatchObject({ status: 'failed', retryable: true });
    for (const s of [301, 400, 401, 403, 404, 410, 422]) expect(resultOfHttpStatus('x', s)).toMatchObject({ status: 'failed', retryable: false });
    expect(resultOfHttpStatus('slack', 404, '  channel_not_found \n')).toEqual({ status: 'failed', reason: 'slack answered HTTP 404: channel_not_found', retryable: false });
    expect((resultOfHttpStatus('x', 500, 'y'.repeat(1000)) as { reason: string }).reason.length).toBeLessThan(260);
  });

  it('posts JSON; network failures are retryable, refusals are not swallowed', async () => {
    const plugin = { kind: 'notifier' as const, notify: async () => ({ status: 'sent' as const }) };
    const ok = createTestHost({ plugin, grants: { http: { hosts: ['hooks.test'] } }, http: (r) => ({ status: r.headers['content-type'] === 'application/json' ? 204 : 415 }) });
    expect(await postJson(ok.ctx, 'hook', 'https://hooks.test/x', { a: 1 })).toEqual({ status: 'sent' });
    expect(ok.requests[0]).toMatchObject({ method: 'POST', body: '{"a":1}' });
    const down = createTestHost({ plugin, grants: { http: { hosts: ['hooks.test'] } } });
    expect(await postJson(down.ctx, 'hook', 'https://hooks.test/x', {})).toMatchObject({ status: 'failed', retryable: true, reason: 'hook unreachable: network error' });
    const refused = createTestHost({ plugin, grants: {} });
    await expect(postJson(refused.ctx, 'hook', 'https://hooks.test/x', {})).rejects.toMatchObject({ code: 'capability_denied' });
  });

  it('lists facts and keys alerts by certificate', () => {
    expect(notificationFacts(req).map((f) => f.label)).toEqual(['Type', 'Severity', 'Certificate', 'Common name', 'Status', 'Expires at']);
    expect(notificationFacts({ ...req, certificate: undefined }).map((f) => f.label)).toEqual(['Type', 'Severity']);
    expect(alertKeyOf(req)).toBe('certctl-mc-1');
    expect(alertKeyOf({ ...req, certificate: undefined })).toBe('certctl-notif-1');
    expect(truncate('abcdef', 5)).toBe('ab...');
    expect(truncate('abc', 5)).toBe('abc');
  });
});
