import type { Json } from '@certctl/sdk';

/**
 * ctx.ca.ensure answers remembered in the plugin's worker thread. An issuer asks
 * ensure before every signature ("make my CA if it is not there yet"), and the
 * answer changes only when the CA does; each ask is a round trip to the kernel
 * thread, which on the issuance hot path costs more than the keystore's answer.
 *
 * An answer is reused for the same instance and the same request (so a config
 * change that asks for another CA goes to the kernel) for at most MEMO_MS, the
 * time the kernel's keystore itself may serve a cached CA; a signature refused
 * for a reason about the CA (missing, expired, retired: anything but a bad
 * request) forgets the instance's answers, so the next ensure asks the kernel.
 * Only the answer is remembered: no key ever crosses into this thread.
 */
const MEMO_MS = 5_000;
const MAX_ENTRIES = 256;

const memo = new Map<string, { value: string; at: number }>();

const keyOf = (instanceId: string | null, request: Json) => `${instanceId ?? ''}\0${JSON.stringify(request)}`;

export async function memoisedEnsure(instanceId: string | null, request: Json, ask: () => Promise<Json>, now = Date.now): Promise<Json> {
  const key = keyOf(instanceId, request);
  const hit = memo.get(key);
  // A fresh copy every time: the plugin may change what it gets.
  if (hit && now() - hit.at < MEMO_MS) return JSON.parse(hit.value) as Json;
  const value = await ask();
  memo.set(key, { value: JSON.stringify(value), at: now() });
  if (memo.size > MAX_ENTRIES) memo.delete(memo.keys().next().value!);
  return value;
}

/** Codes of a ca.sign refusal that say nothing about the CA itself. */
const REQUEST_FAULTS = new Set(['bad_request', 'csr_invalid']);

/** After a failed ca.sign: forget the instance's answers unless the request alone was at fault. */
export function forgetEnsuredAfter(instanceId: string | null, err: unknown): void {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && REQUEST_FAULTS.has(code)) return;
  const prefix = `${instanceId ?? ''}\0`;
  for (const key of [...memo.keys()]) if (key.startsWith(prefix)) memo.delete(key);
}
