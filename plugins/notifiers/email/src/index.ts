import nodemailer from 'nodemailer';
import { definePlugin } from '@certctl/sdk';
import { NOTIFY_HTTP_TIMEOUT_MS } from '@certctl/sdk/notify';
import { mailBodies, usableRecipient } from './message.js';
import { resultOfSmtpError } from './smtp-result.js';

interface EmailConfig {
  host: string;
  port: number;
  secure: boolean;
  starttls: 'required' | 'opportunistic' | 'disabled';
  username?: string;
  from: string;
}

/**
 * E-mail over SMTP with nodemailer. This first-party plugin runs as trusted
 * code in a worker thread and opens its SMTP connection itself (the broker's
 * http.fetch cannot speak SMTP); the host and port are the operator's. One
 * connection per notification, with 10 s connect/greeting/socket timeouts.
 */
export default definePlugin({
  kind: 'notifier',
  async notify(req, ctx) {
    const c = ctx.config as unknown as EmailConfig;
    const to = req.recipients.filter(usableRecipient);
    if (!to.length) return { status: 'failed', reason: 'email: no recipients (set the notifier\'s recipients or the certificate owner\'s e-mail)', retryable: false };
    const password = c.username ? await ctx.secrets.get('password') : undefined;
    const transport = nodemailer.createTransport({
      host: c.host,
      port: c.port,
      secure: c.secure,
      requireTLS: !c.secure && c.starttls === 'required',
      ignoreTLS: !c.secure && c.starttls === 'disabled',
      ...(c.username ? { auth: { user: c.username, pass: password ?? '' } } : {}),
      connectionTimeout: NOTIFY_HTTP_TIMEOUT_MS,
      greetingTimeout: NOTIFY_HTTP_TIMEOUT_MS,
      socketTimeout: NOTIFY_HTTP_TIMEOUT_MS,
      logger: false,
      debug: false,
    });
    try {
      const info = await transport.sendMail({
        from: c.from,
        to,
        subject: req.subject,
        ...mailBodies(req),
        headers: { 'X-Certctl-Notification-Id': req.notificationId, 'X-Certctl-Event': req.type },
      });
      if (info.rejected.length && !info.accepted.length) return { status: 'failed', reason: `smtp: every recipient was rejected (${info.rejected.length})`, retryable: false };
      if (info.rejected.length) ctx.log.warn('some recipients were rejected', { rejected: info.rejected.length, accepted: info.accepted.length });
      return { status: 'sent' };
    } catch (err) {
      return resultOfSmtpError(err);
    } finally {
      transport.close();
    }
  },
});
