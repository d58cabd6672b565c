import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../support/free-port.js';

/**
 * A real SMTP server for tests: aiosmtpd (Debian python3-aiosmtpd) on a
 * loopback port. Each message is parsed with Python's email package and written
 * as one JSON file; `messages()` reads them back. With `auth`, the server
 * advertises AUTH (over plain text: loopback only), requires it, and accepts only that login.
 */
const SCRIPT = String.raw`
import email, email.policy, json, os, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
outdir, port, auth = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        part = lambda kind: (msg.get_body(preferencelist=(kind,)) or None)
        text, html = part('plain'), part('html')
        rec = {
            'mail_from': envelope.mail_from, 'rcpt_tos': envelope.rcpt_tos,
            'login': session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            'headers': {k.lower(): str(v) for k, v in msg.items()},
            'text': text.get_content() if text is not None else None, 'html': html.get_content() if html is not None else None,
        }
        name = '%d' % time.time_ns()
        with open(os.path.join(outdir, '.' + name), 'w') as f: json.dump(rec, f)
        os.rename(os.path.join(outdir, '.' + name), os.path.join(outdir, name + '.json'))
        return '250 Message accepted for delivery'
def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth and (auth_data.login.decode() + ':' + auth_data.password.decode()) == auth
    return AuthResult(success=bool(ok), handled=False, auth_data=auth_data)
kwargs = dict(authenticator=authenticator, auth_require_tls=False, auth_required=True) if auth else {}
c = Controller(Handler(), hostname='127.0.0.1', port=port, **kwargs)
c.start()
print('ready', flush=True)
try:
    sys.stdin.read()
finally:
    c.stop()
`;

export interface SmtpMessage {
  mail_from: string;
  rcpt_tos: string[];
  login: string | null;
  headers: Record<string, string>;
  text: string | null;
  html: string | null;
}

export interface SmtpSink {
  port: number;
  messages(): SmtpMessage[];
  stop(): Promise<void>;
}

export async function startSmtpSink(opts: { auth?: { user: string; pass: string } } = {}): Promise<SmtpSink> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-smtp-'));
  const port = await freePort();
  const child: ChildProcess = spawn('/usr/bin/python3', ['-c', SCRIPT, dir, String(port), opts.auth ? `${opts.auth.user}:${opts.auth.pass}` : ''], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aiosmtpd did not start: ${stderr}`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`aiosmtpd exited (${code}): ${stderr}`)); });
  });
  return {
    port,
    messages: () => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as SmtpMessage),
    async stop() {
      const exited = new Promise<void>((resolve) => { if (child.exitCode !== null) resolve(); else child.once('exit', () => resolve()); });
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
