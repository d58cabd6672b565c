import type { ConformanceOptions, FakeHttpResponse } from '@certctl/sdk/testing';

/** Answers like the Alert API: 202 "Request will be processed" with the right GenieKey, 422/401 otherwise. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  const key = 'c0nf0rmance-0000-4000-8000-000000000000';
  return {
    config: { api_url: 'https://api.opsgenie.com', tags: ['certctl'], close_on_success: true },
    secrets: { api_key: key },
    grants: { http: { hosts: ['api.opsgenie.com:443'] } },
    http: (req): FakeHttpResponse => {
      if (req.headers.authorization !== `GenieKey ${key}`) return { status: 401, body: { message: 'Could not authenticate', took: 0, requestId: 'r-1' } };
      const a = JSON.parse(req.body ?? '{}') as { message?: string };
      if (new URL(req.url).pathname !== '/v2/alerts' || !a.message) return { status: 422, body: { message: 'Request body is not processable', took: 0, requestId: 'r-2' } };
      return { status: 202, body: { result: 'Request will be processed', took: 0.01, requestId: 'r-3' } };
    },
  };
}
