import net from 'node:net';
import type { ConformanceOptions } from '@certctl/sdk/testing';

/**
 * A minimal SMTP listener on loopback (greeting, EHLO, MAIL, RCPT, DATA, QUIT)
 * so the conformance run sends a real message over a socket. The real-server
 * test (test/notifications) uses aiosmtpd.
 */
function smtpSink(): Promise<number> {
  const server = net.createServer((socket) => {
    let inData = false;
    let buffered = '';
    socket.write('220 conformance.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      let i: number;
      while ((i = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 2);
        if (inData) {
          if (line === '.') { inData = false; socket.write('250 2.0.0 queued\r\n'); }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-conformance.test\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') { inData = true; socket.write('354 go ahead\r\n'); }
        else if (verb === 'QUIT') socket.end('221 bye\r\n');
        else socket.write('250 OK\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    server.unref();
    resolve((server.address() as net.AddressInfo).port);
  }));
}

export default async function conformance(): Promise<Omit<ConformanceOptions, 'plugin'>> {
  const port = await smtpSink();
  return { config: { host: '127.0.0.1', port, secure: false, starttls: 'disabled', from: 'certctl <certctl@example.test>' } };
}
