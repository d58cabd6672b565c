import type { NotifyRequest } from '@certctl/sdk';
import { notificationFacts, truncate } from '@certctl/sdk/notify';

/** Slack mrkdwn treats &, < and > as control characters; everything else is literal. */
export const escapeMrkdwn = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const ICON: Record<NotifyRequest['severity'], string> = { info: ':information_source:', warning: ':warning:', critical: ':rotating_light:' };

/**
 * An incoming-webhook message: `text` (the notification fallback and the whole
 * message for clients without blocks) and Block Kit `blocks` (header, message,
 * up to 10 fields, context), within Slack's documented limits: header text 150
 * characters, section text 3000, each field 2000.
 */
export function slackPayload(req: NotifyRequest, overrides: { channel?: string; username?: string; icon_emoji?: string }): Record<string, unknown> {
  const fields = notificationFacts(req).slice(0, 10).map((f) => ({ type: 'mrkdwn', text: truncate(`*${f.label}*\n${escapeMrkdwn(f.value)}`, 2000) }));
  return {
    ...(overrides.channel ? { channel: overrides.channel } : {}),
    ...(overrides.username ? { username: overrides.username } : {}),
    ...(overrides.icon_emoji ? { icon_emoji: overrides.icon_emoji } : {}),
    text: truncate(`${ICON[req.severity]} ${escapeMrkdwn(req.subject)}`, 3000),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: truncate(req.subject, 150), emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: truncate(escapeMrkdwn(req.message), 3000) } },
      { type: 'section', fields },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escapeMrkdwn(`certctl ${req.type} · ${req.notificationId}`) }] },
    ],
  };
}
