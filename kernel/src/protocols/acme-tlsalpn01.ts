import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { Json } from '@certctl/sdk';
import { children, contentOf, oidToString, readTlv, type Tlv } from '../crypto/der.js';
import { ipBytes } from '../crypto/leaf-template.js';
import { failure, type Outcome } from './acme-resolve.js';
import { parseTarget, validateAtAddresses, type Target } from './acme-validation-request.js';

/*
 * ACME tls-alpn-01 validation (RFC 8737; RFC 8738 for IP identifiers) for protocol
 * plugins (ctx.issuance.checkTlsAlpn01): a TLS handshake with the name's pinned
 * address on port 443 (or an operator-chosen high port), ALPN "acme-tls/1" and the
 * name as SNI (the reverse-DNS name for an IP). The self-signed certificate offered
 * must carry exactly that one name as its SAN and the critical id-pe-acmeIdentifier
 * extension holding SHA-256(keyAuthorization). No application data is exchanged.
 */

const ALPN = 'acme-tls/1';
const ACME_IDENTIFIER = '1.3.6.1.5.5.7.1.31';
const SUBJECT_ALT_NAME = '2.5.29.17';

export async function checkTlsAlpn01(raw: Json, deadline: number): Promise<Outcome | { problem: string }> {
  const parsed = parseTarget(raw, 443);
  if (typeof parsed === 'string') return { problem: parsed };
  const req = parsed.target;
  return validateAtAddresses(req, deadline, (address, timeout) => handshake(req, address, timeout));
}

/** RFC 8738 section 6: an IP identifier's SNI is its reverse-mapping name. */
export function sniFor(host: string): string {
  if (net.isIPv4(host)) return `${host.split('.').reverse().join('.')}.in-addr.arpa`;
  if (net.isIPv6(host)) return `${[...ipBytes(host).toString('hex')].reverse().join('.')}.ip6.arpa`;
  return host;
}

function handshake(req: Target, address: string, timeout: number): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const where = `${req.host}:${req.port}`;
    const socket = tls.connect({ host: address, port: req.port, servername: sniFor(req.host), ALPNProtocols: [ALPN], rejectUnauthorized: false, timeout }, () => {
      const proto = socket.alpnProtocol;
      const der = socket.getPeerCertificate(false)?.raw;
      socket.destroy();
      if (proto !== ALPN) return resolve(failure('incorrectResponse', `${where} did not negotiate ALPN ${ALPN}`));
      if (!der?.length) return resolve(failure('incorrectResponse', `${where} offered no certificate`));
      resolve(checkCertificate(der, req));
    });
    socket.on('timeout', () => {
      socket.destroy();
      resolve(failure('connection', `no TLS handshake with ${where} within ${timeout} ms`));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'error';
      resolve(/^ERR_SSL|^EPROTO/.test(code) ? failure('tls', `the TLS handshake with ${where} failed (${code})`) : failure('connection', `connecting to ${where} (${address}) failed (${code})`));
    });
  });
}

/** The certificate's extensions by OID: [critical, extnValue content]. */
function extensions(der: Buffer): Map<string, { critical: boolean; value: Buffer }> {
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0];
  const out = new Map<string, { critical: boolean; value: Buffer }>();
  const wrapper = children(der, tbs).find((t) => t.tag === 0xa3);
  if (!wrapper) return out;
  for (const ext of children(der, children(der, wrapper)[0])) {
    const parts = children(der, ext);
    const critical = parts.length === 3 && parts[1].tag === 0x01 && der[parts[1].contentStart] !== 0;
    out.set(oidToString(contentOf(der, parts[0])), { critical, value: contentOf(der, parts[parts.length - 1]) });
  }
  return out;
}

function checkCertificate(der: Buffer, req: Target): Outcome {
  const bad = (why: string) => failure('incorrectResponse', `the tls-alpn-01 certificate from ${req.host}:${req.port} ${why}`);
  let exts: Map<string, { critical: boolean; value: Buffer }>;
  try {
    exts = extensions(der);
  } catch {
    return bad('does not parse');
  }
  const acme = exts.get(ACME_IDENTIFIER);
  if (!acme) return bad('has no acmeIdentifier extension');
  if (!acme.critical) return bad('has a non-critical acmeIdentifier extension');
  const expected = createHash('sha256').update(req.keyAuthorization).digest();
  // extnValue wraps the DER of Authorization ::= OCTET STRING (SIZE (32)).
  if (!acme.value.equals(Buffer.concat([Buffer.from([0x04, 0x20]), expected]))) return bad('carries an acmeIdentifier that does not match the key authorization');
  const san = exts.get(SUBJECT_ALT_NAME);
  if (!san) return bad('has no subjectAltName');
  let names: Tlv[];
  try {
    names = children(san.value, readTlv(san.value, 0));
  } catch {
    return bad('has a subjectAltName that does not parse');
  }
  if (names.length !== 1) return bad(`names ${names.length} subjectAltNames, not exactly one`);
  const name = names[0];
  const value = contentOf(san.value, name);
  const matches = net.isIP(req.host)
    ? name.tag === 0x87 && value.equals(ipBytes(req.host))
    : name.tag === 0x82 && value.toString('latin1').toLowerCase() === req.host;
  return matches ? { ok: true } : bad(`does not name ${req.host} as its subjectAltName`);
}
