import type { ConformanceOptions, FakeHttpResponse } from '@certctl/sdk/testing';

/** Answers like the Events API v2: 202 for a well-formed event, 400 "invalid event" otherwise. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  const routingKey = 'R0UT1NGKEYC0NF0RMANCE00000000000';
  return {
    config: { api_url: 'https://events.pagerduty.com', source: 'certctl', resolve_on_success: true },
    secrets: { routing_key: routingKey },
    grants: { http: { hosts: ['events.pagerduty.com:443'] } },
    http: (req): FakeHttpResponse => {
      const e = JSON.parse(req.body ?? '{}') as { routing_key?: string; event_action?: string; dedup_key?: string; payload?: { summary?: string; source?: string; severity?: string } };
      const ok = new URL(req.url).pathname === '/v2/enqueue' && e.routing_key === routingKey && e.event_action === 'trigger'
        && Boolean(e.payload?.summary && e.payload.source && ['critical', 'error', 'warning', 'info'].includes(e.payload.severity ?? ''));
      return ok
        ? { status: 202, body: { status: 'success', message: 'Event processed', dedup_key: e.dedup_key ?? null } }
        : { status: 400, body: { status: 'invalid event', message: 'Event object is invalid' } };
    },
  };
}
