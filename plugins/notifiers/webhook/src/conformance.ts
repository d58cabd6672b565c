import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ConformanceOptions } from '@certctl/sdk/testing';

const SECRET = 'conformance-webhook-secret';

/** A receiver that checks the signature, as a real one should. */
export default function conformance(): Omit<ConformanceOptions, 'plugin'> {
  return {
    config: { url: 'https://hooks.example.test/certctl' },
    secrets: { secret: SECRET },
    grants: { http: { hosts: ['hooks.example.test:443'] } },
    http: (req) => {
      const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(req.rawBody ?? Buffer.alloc(0)).digest('hex')}`);
      const got = Buffer.from(req.headers['x-certctl-signature'] ?? '');
      const ok = got.length === expected.length && timingSafeEqual(got, expected);
      return ok ? { status: 204 } : { status: 401, body: 'bad signature' };
    },
  };
}
