import { describe, expect, it } from 'vitest';
import { notifierWants, routeEvent, type NotifierRoute } from './notification-routing.js';

const notifier = (id: string, over: Partial<NotifierRoute> = {}): NotifierRoute => ({
  id, type: 'webhook', event_types: [], min_severity: 'info', renewal_policy_ids: [], recipients: [], ...over,
});
const warning = { type: 'ExpirationWarning' as const, severity: 'warning' as const, dedupe_key: 'expiry:mc-1:7:100' };
const cert = { renewal_policy_id: 'rp-web', owner_email: 'alice@example.com' };

describe('notification routing', () => {
  it('filters by event type, minimum severity and renewal policy (empty lists mean all)', () => {
    expect(notifierWants(notifier('a'), warning, cert)).toBe(true);
    expect(notifierWants(notifier('a', { event_types: ['RenewalFailure'] }), warning, cert)).toBe(false);
    expect(notifierWants(notifier('a', { event_types: ['RenewalFailure', 'ExpirationWarning'] }), warning, cert)).toBe(true);
    expect(notifierWants(notifier('a', { min_severity: 'critical' }), warning, cert)).toBe(false);
    expect(notifierWants(notifier('a', { min_severity: 'warning' }), warning, cert)).toBe(true);
    expect(notifierWants(notifier('a', { min_severity: 'warning' }), { ...warning, severity: 'info' }, cert)).toBe(false);
    expect(notifierWants(notifier('a', { renewal_policy_ids: ['rp-db'] }), warning, cert)).toBe(false);
    expect(notifierWants(notifier('a', { renewal_policy_ids: ['rp-db', 'rp-web'] }), warning, cert)).toBe(true);
    // A policy filter never matches an event about no certificate, or one without a policy.
    expect(notifierWants(notifier('a', { renewal_policy_ids: ['rp-web'] }), warning, null)).toBe(false);
    expect(notifierWants(notifier('a', { renewal_policy_ids: ['rp-web'] }), warning, { ...cert, renewal_policy_id: null })).toBe(false);
    // jsonb may arrive as text.
    expect(notifierWants(notifier('a', { event_types: '["RenewalFailure"]' }), warning, cert)).toBe(false);
  });

  it('addresses explicit recipients, else the owner, with one dedupe key per channel', () => {
    const routes = routeEvent(warning, cert, [notifier('ntf-a'), notifier('ntf-b', { type: 'email', recipients: ['ops@example.com', 'pki@example.com'] }), notifier('ntf-c', { min_severity: 'critical' })]);
    expect(routes).toEqual([
      { notifierId: 'ntf-a', channel: 'webhook', recipients: ['alice@example.com'], dedupeKey: 'expiry:mc-1:7:100#ntf-a' },
      { notifierId: 'ntf-b', channel: 'email', recipients: ['ops@example.com', 'pki@example.com'], dedupeKey: 'expiry:mc-1:7:100#ntf-b' },
    ]);
  });

  it('keeps an event no notifier wants as one unrouted row addressed to the owner', () => {
    expect(routeEvent(warning, cert, [notifier('ntf-c', { min_severity: 'critical' })])).toEqual([
      { notifierId: null, channel: 'email', recipients: ['alice@example.com'], dedupeKey: 'expiry:mc-1:7:100' },
    ]);
    expect(routeEvent({ ...warning, dedupe_key: undefined }, { renewal_policy_id: null, owner_email: '  ' }, [])).toEqual([
      { notifierId: null, channel: 'email', recipients: [], dedupeKey: null },
    ]);
  });
});
