import net from 'node:net';
import { classifyAddress, IP_LITERAL_ONLY_CLASSES } from './address-policy.js';

/**
 * The http host rule (host-allowlist syntax) for the origin of a URL an operator
 * put into a plugin instance's config (a field marked `x-certctl-url`): scheme,
 * exact host and port, so `https://a.test/x` grants https to a.test:443 only and
 * `http://127.0.0.1:8080/h` plain http to that address and port.
 *
 * Loopback and private addresses pass because the operator named them. Cloud
 * metadata and unspecified addresses never do, however they are spelled (an
 * IPv4-mapped IPv6 literal, a decimal or hex IPv4 that the URL parser
 * normalises): an exact IP literal rule is the one way past the fetch policy's
 * refusal of those classes, and config is not the operator's capability review.
 * The kernel's broker (notifiers, issuers) and the agent's broker (targets) both
 * derive config grants here, so they refuse the same things.
 */
export function configOriginRule(raw: unknown): { rule: string } | { problem: string } {
  if (typeof raw !== 'string') return { problem: 'a URL must be a string' };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: `${JSON.stringify(raw.slice(0, 200))} is not a URL` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { problem: `${url.protocol} URLs cannot be granted` };
  if (url.username || url.password) return { problem: 'a URL with credentials cannot be granted' };
  const host = url.hostname.replace(/\.$/, '');
  if (!host) return { problem: 'the URL names no host' };
  const bare = host.replace(/^\[|\]$/g, '');
  if (net.isIP(bare)) {
    const cls = classifyAddress(bare);
    if (IP_LITERAL_ONLY_CLASSES.has(cls)) return { problem: `${host} is a ${cls} address: config cannot grant it` };
  }
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const hostPart = net.isIP(bare) === 6 ? `[${bare}]` : host;
  return { rule: `${url.protocol === 'http:' ? 'http://' : ''}${hostPart}:${port}` };
}
