import type { NotifyRequest } from '@certctl/sdk';
import { notificationFacts } from '@certctl/sdk/notify';

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Plain text and HTML bodies with the same content: the message, then the facts. */
export function mailBodies(req: NotifyRequest): { text: string; html: string } {
  // A request with its own HTML (the kernel's digest) already has both forms.
  if (req.html !== undefined) return { text: req.message, html: req.html };
  const facts = notificationFacts(req);
  const width = Math.max(...facts.map((f) => f.label.length));
  const text = [req.message, '', ...facts.map((f) => `${`${f.label}:`.padEnd(width + 2)}${f.value}`), '', `-- certctl notification ${req.notificationId}`].join('\n');
  const rows = facts.map((f) => `<tr><th align="left">${escapeHtml(f.label)}</th><td>${escapeHtml(f.value)}</td></tr>`).join('');
  const html = `<p>${escapeHtml(req.message)}</p><table cellpadding="4">${rows}</table><p style="color:#666">certctl notification ${escapeHtml(req.notificationId)}</p>`;
  return { text, html };
}

/** Addresses one can put in a To: header: no line breaks, something@something. */
export const usableRecipient = (r: string): boolean => !/[\r\n]/.test(r) && /^[^@\s]+@[^@\s]+$/.test(r.trim());
