import { describe, expect, it } from 'vitest';
import { ISSUANCE_METHODS } from '@certctl/sdk';
import { BOOTSTRAP_SOURCE } from './isolate-bootstrap.js';

describe('isolate bootstrap', () => {
  it('gives ctx.issuance exactly the SDK methods, each sent as its issuance.<method> op', () => {
    const block = /issuance: \{\n([\s\S]*?)\n {6}\},/.exec(BOOTSTRAP_SOURCE)?.[1] ?? '';
    const shims = [...block.matchAll(/^ {8}(\w+): function (\w+)\(request\) \{ return hostOp\(\{ op: 'issuance\.(\w+)', request: jsonArg\(request\) \}\); \},$/gm)];
    expect(shims.length).toBe(block.split('\n').length);
    for (const [, key, fn, op] of shims) expect([fn, op]).toEqual([key, key]);
    expect(shims.map((m) => m[1])).toEqual([...ISSUANCE_METHODS]);
  });
});
