/**
 * @certctl/sdk/notify: what notifier plugins share: mapping an HTTP answer to a
 * NotifyResult (4xx other than 408/429 is permanent, 408/429/5xx and network
 * failures are worth a retry), a JSON POST through ctx.http.fetch, and the
 * facts of a notification as label/value pairs for chat cards and mails.
 * Runtime-neutral: no Node built-ins.
 */
import type { HttpRequest, NotifyRequest, NotifyResult, PluginContext } from '../contract.js';

/** Every notifier's HTTP calls give up after this long (the host's per-call deadline still applies). */
export const NOTIFY_HTTP_TIMEOUT_MS = 10_000;

const MAX_DETAIL = 200;

/** A short, single-line excerpt of a response body for the failure reason. */
export function responseExcerpt(body: string | undefined): string {
  const text = (body ?? '').replace(/\s+/g, ' ').trim();
  return text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL)}...` : text;
}

/**
 * The NotifyResult of an HTTP status from a notification service: 2xx sent;
 * 408 and 429 (come back later) and 5xx retryable; any other status (4xx: the
 * request or credentials are wrong; 3xx: redirects are not followed) final.
 */
export function resultOfHttpStatus(service: string, status: number, body?: string): NotifyResult {
  if (status >= 200 && status < 300) return { status: 'sent' };
  const excerpt = responseExcerpt(body);
  const reason = `${service} answered HTTP ${status}${excerpt ? `: ${excerpt}` : ''}`;
  const retryable = status === 408 || status === 429 || status >= 500;
  return { status: 'failed', reason, retryable };
}

/** Errors the host raises that the plugin must not swallow: refusals and the call's own deadline. */
const HOST_OUTCOMES = new Set(['capability_denied', 'timeout']);

/**
 * Sends one request and maps the answer. A network failure (refused, reset,
 * DNS, the 10 s timeout) is a retryable failure; a host refusal (the URL is not
 * granted) or the end of the call's deadline is rethrown so the host reports
 * it as such. Reasons name the service and status, never the URL (some URLs,
 * like Slack's, are secrets).
 */
export async function sendHttp(ctx: PluginContext, service: string, request: HttpRequest): Promise<NotifyResult> {
  try {
    const res = await ctx.http.fetch({ timeoutMs: NOTIFY_HTTP_TIMEOUT_MS, ...request });
    return resultOfHttpStatus(service, res.status, res.bodyEncoding === 'utf8' ? res.body : undefined);
  } catch (err) {
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && HOST_OUTCOMES.has(code)) throw err;
    return { status: 'failed', reason: `${service} unreachable: ${typeof code === 'string' ? code : 'network error'}`, retryable: true };
  }
}

/** POSTs a JSON payload (see sendHttp). */
export function postJson(ctx: PluginContext, service: string, url: string, payload: unknown, headers: Record<string, string> = {}): Promise<NotifyResult> {
  return sendHttp(ctx, service, { url, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(payload) });
}

export interface Fact {
  label: string;
  value: string;
}

/** The notification's facts in display order: type, severity, then the certificate's, when there is one. */
export function notificationFacts(req: NotifyRequest): Fact[] {
  const facts: Fact[] = [{ label: 'Type', value: req.type }, { label: 'Severity', value: req.severity }];
  if (req.certificate) {
    facts.push({ label: 'Certificate', value: req.certificate.id }, { label: 'Common name', value: req.certificate.commonName });
    facts.push({ label: 'Status', value: req.certificate.status }, { label: 'Expires at', value: req.certificate.expiresAt ?? 'unknown' });
  }
  return facts;
}

/** Events that report a problem fixed; paging channels resolve/close the certificate's open alert on them. */
export const RESOLVING_TYPES: ReadonlySet<NotifyRequest['type']> = new Set(['RenewalSuccess', 'DeploymentSuccess']);

/**
 * The key that ties a notification to the alert it opens or resolves: the
 * certificate's, so a later RenewalSuccess resolves the warning; the
 * notification's own id for events about no certificate.
 */
export const alertKeyOf = (req: NotifyRequest): string => (req.certificate ? `certctl-${req.certificate.id}` : `certctl-${req.notificationId}`);

/** Cuts text to a service's field limit. */
export const truncate = (text: string, max: number): string => (text.length > max ? `${text.slice(0, Math.max(0, max - 3))}...` : text);
