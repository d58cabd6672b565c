import type { NotifyRequest } from '@certctl/sdk';
import { notificationFacts } from '@certctl/sdk/notify';

const THEME: Record<NotifyRequest['severity'], string> = { info: '0076D7', warning: 'FFA500', critical: 'D13438' };
const ADAPTIVE_COLOR: Record<NotifyRequest['severity'], string> = { info: 'Default', warning: 'Warning', critical: 'Attention' };

/** The legacy actionable-message card that Office 365 connector webhooks take. */
export function messageCard(req: NotifyRequest): Record<string, unknown> {
  return {
    '@type': 'MessageCard',
    '@context': 'https://schema.org/extensions',
    summary: req.subject,
    themeColor: THEME[req.severity],
    title: req.subject,
    text: req.message,
    sections: [{ facts: notificationFacts(req).map((f) => ({ name: f.label, value: f.value })) }],
  };
}

/** A message with one Adaptive Card attachment, the shape Workflows webhooks take. */
export function adaptiveCardMessage(req: NotifyRequest): Record<string, unknown> {
  return {
    type: 'message',
    attachments: [{
      contentType: 'application/vnd.microsoft.card.adaptive',
      contentUrl: null,
      content: {
        $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
        type: 'AdaptiveCard',
        version: '1.4',
        body: [
          { type: 'TextBlock', text: req.subject, weight: 'Bolder', size: 'Medium', wrap: true, color: ADAPTIVE_COLOR[req.severity] },
          { type: 'TextBlock', text: req.message, wrap: true },
          { type: 'FactSet', facts: notificationFacts(req).map((f) => ({ title: f.label, value: f.value })) },
        ],
      },
    }],
  };
}
