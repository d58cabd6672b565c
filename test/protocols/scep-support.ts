import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

/*
 * Helpers for the SCEP tests: the real micromdm scepclient (Debian package `scep`),
 * a loopback recorder in front of the kernel that keeps the PKIOperation messages
 * scepclient sends (to replay and damage them), and a reader of CertRep attributes.
 */

export const SCEPCLIENT = '/usr/bin/scepclient';

export interface ScepRun {
  code: number | null;
  output: string;
}

/**
 * Runs scepclient with its key (and csr.pem, self.pem, client.pem) in `dir`. Go
 * reads extra trust anchors from SSL_CERT_FILE, so the client verifies the
 * kernel's own TLS certificate (no plain HTTP, no skipped verification).
 * `until`: a line of output at which to stop the client (it sleeps 30 s on PENDING).
 */
export function scepclient(dir: string, opts: { url: string; tlsCa: string; cn: string; challenge?: string; caFingerprint?: string; until?: RegExp; timeoutMs?: number }): Promise<ScepRun> {
  fs.mkdirSync(dir, { recursive: true });
  const args = ['-server-url', opts.url, '-private-key', path.join(dir, 'key.pem'), '-cn', opts.cn, '-debug'];
  if (opts.challenge !== undefined) args.push('-challenge', opts.challenge);
  if (opts.caFingerprint) args.push('-ca-fingerprint', opts.caFingerprint);
  return new Promise((resolve, reject) => {
    const child = spawn(SCEPCLIENT, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SSL_CERT_FILE: opts.tlsCa }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (opts.until?.test(output)) child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export interface Recorded {
  request: Buffer;
  response: Buffer;
  status: number;
}

/**
 * A plain-HTTP loopback recorder forwarding to the kernel over HTTPS (verifying its
 * certificate): scepclient talks to it, and every PKIOperation exchange is kept.
 */
export async function startRecorder(target: string, tlsCa: string): Promise<{ url: string; messages: Recorded[]; close(): Promise<void> }> {
  const ca = fs.readFileSync(tlsCa);
  const messages: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const upstream = https.request(new URL(req.url ?? '/', target), { method: req.method, ca, headers: { 'content-type': req.headers['content-type'] ?? 'application/octet-stream', 'content-length': String(body.length) } }, (up) => {
        const back: Buffer[] = [];
        up.on('data', (c: Buffer) => back.push(c));
        up.on('end', () => {
          const response = Buffer.concat(back);
          if (req.url?.includes('operation=PKIOperation')) messages.push({ request: body, response, status: up.statusCode ?? 0 });
          res.writeHead(up.statusCode ?? 502, { 'content-type': up.headers['content-type'] ?? 'application/octet-stream' });
          res.end(response);
        });
      });
      upstream.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, messages, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** pkiStatus, failInfo, messageType and nonces of a CertRep, read with pkijs. */
export function certRepFields(der: Buffer): { messageType: string; pkiStatus: string; failInfo: string | null; transactionId: string; recipientNonce: string; hasContent: boolean } {
  const info = pkijs.ContentInfo.fromBER(new Uint8Array(der).slice().buffer);
  const sd = new pkijs.SignedData({ schema: info.content });
  const attrs = sd.signerInfos[0].signedAttrs!.attributes;
  const value = (oid: string) => attrs.find((a) => a.type === oid)?.values[0] as asn1js.BaseStringBlock | asn1js.OctetString | undefined;
  const text = (oid: string) => (value(oid) as { valueBlock: { value: string } } | undefined)?.valueBlock.value ?? null;
  const nonce = value('2.16.840.1.113733.1.9.6') as asn1js.OctetString | undefined;
  return {
    messageType: text('2.16.840.1.113733.1.9.2') ?? '',
    pkiStatus: text('2.16.840.1.113733.1.9.3') ?? '',
    failInfo: text('2.16.840.1.113733.1.9.4'),
    transactionId: text('2.16.840.1.113733.1.9.7') ?? '',
    recipientNonce: nonce ? Buffer.from(nonce.valueBlock.valueHexView).toString('hex') : '',
    hasContent: Boolean(sd.encapContentInfo.eContent),
  };
}

/** The messageType and senderNonce (hex) of a client's pkiMessage. */
export function requestFields(der: Buffer): { messageType: string; senderNonce: string } {
  const info = pkijs.ContentInfo.fromBER(new Uint8Array(der).slice().buffer);
  const sd = new pkijs.SignedData({ schema: info.content });
  const attrs = sd.signerInfos[0].signedAttrs!.attributes;
  const nonce = attrs.find((a) => a.type === '2.16.840.1.113733.1.9.5')!.values[0] as asn1js.OctetString;
  const type = attrs.find((a) => a.type === '2.16.840.1.113733.1.9.2')!.values[0] as asn1js.PrintableString;
  return { messageType: type.valueBlock.value, senderNonce: Buffer.from(nonce.valueBlock.valueHexView).toString('hex') };
}

/**
 * A client pkiMessage built here (scepclient never sends CertPoll: it re-sends its
 * PKCSReq): a SignedData over `content` signed with `keyPem` as `certPem`, with
 * the SCEP attributes, SHA-256 and RSA.
 */
export async function signedPkiMessage(opts: { certPem: string; keyPem: string; messageType: number; transactionId: string; content: Buffer }): Promise<Buffer> {
  const cert = pkijs.Certificate.fromBER(new Uint8Array(new crypto.X509Certificate(opts.certPem).raw).slice().buffer);
  const pkcs8 = crypto.createPrivateKey(opts.keyPem).export({ format: 'der', type: 'pkcs8' });
  const key = await crypto.webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  const bytes = (b: Buffer) => new Uint8Array(b).slice().buffer;
  const attr = (type: string, value: asn1js.BaseBlock) => new pkijs.Attribute({ type, values: [value] });
  const sd = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: '1.2.840.113549.1.7.1', eContent: new asn1js.OctetString({ valueHex: bytes(opts.content) }) }),
    signerInfos: [new pkijs.SignerInfo({
      version: 1,
      sid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
      signedAttrs: new pkijs.SignedAndUnsignedAttributes({
        type: 0,
        attributes: [
          attr('1.2.840.113549.1.9.3', new asn1js.ObjectIdentifier({ value: '1.2.840.113549.1.7.1' })),
          attr('1.2.840.113549.1.9.4', new asn1js.OctetString({ valueHex: bytes(crypto.createHash('sha256').update(opts.content).digest()) })),
          attr('2.16.840.1.113733.1.9.2', new asn1js.PrintableString({ value: String(opts.messageType) })),
          attr('2.16.840.1.113733.1.9.7', new asn1js.PrintableString({ value: opts.transactionId })),
          attr('2.16.840.1.113733.1.9.5', new asn1js.OctetString({ valueHex: bytes(crypto.randomBytes(16)) })),
        ],
      }),
    })],
    certificates: [cert],
  });
  await sd.sign(key as never, 0, 'SHA-256');
  const info = new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: sd.toSchema(true) });
  return Buffer.from(info.toSchema().toBER(false));
}
