import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { PluginContext, ProtocolHttpRequest, ProtocolHttpResponse } from '@certctl/sdk';
import { bitString, children, nullValue, oid, readTlv, seq, type Tlv } from './der.js';
import { authenticate } from './est-auth.js';
import type { EstEndpoint } from './est-config.js';
import { enrollCsr, readCsr } from './est-enroll.js';
import { textError } from './http.js';
import { base64Lines } from './pkcs7.js';

/*
 * /serverkeygen (RFC 7030 4.4): the client sends a CSR for the names it wants;
 * the server makes the key pair, asks the kernel for a certificate for a CSR it
 * re-signs with the new key, and returns key and certificate together
 * (multipart/mixed: application/pkcs8, then application/pkcs7-mime). The key
 * exists only in this call: it is not stored anywhere. Off unless the operator
 * turns on server_keygen for the endpoint.
 */

function newKey(kind: string): { privateKey: KeyObject; algorithm: Buffer } {
  if (kind.startsWith('rsa-')) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: Number(kind.slice(4)) });
    return { privateKey, algorithm: seq(oid('1.2.840.113549.1.1.11'), nullValue()) };
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: kind === 'ecdsa-p384' ? 'P-384' : 'P-256' });
  return { privateKey, algorithm: seq(oid(kind === 'ecdsa-p384' ? '1.2.840.10045.4.3.3' : '1.2.840.10045.4.3.2')) };
}

/**
 * The client's request with its public key replaced by ours and signed by ours:
 * CertificationRequestInfo { version, subject, spki, [0] attributes } keeps the
 * client's subject and attributes (its requested extensions) byte for byte.
 */
function resign(clientCsr: Buffer, privateKey: KeyObject, algorithm: Buffer): Buffer | null {
  const top = readTlv(clientCsr)!;
  const [info] = children(clientCsr, top)!;
  const parts = children(clientCsr, info);
  if (!parts || parts.length < 3) return null;
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const slice = (p: Tlv) => clientCsr.subarray(p.at, p.end);
  const newInfo = seq(slice(parts[0]), slice(parts[1]), spki, ...parts.slice(3).map(slice));
  const signature = sign(privateKey.asymmetricKeyType === 'rsa' ? 'sha256' : privateKey.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256', newInfo, privateKey);
  return seq(newInfo, algorithm, bitString(signature));
}

export async function serverKeygen(req: ProtocolHttpRequest, ep: EstEndpoint, ctx: PluginContext): Promise<ProtocolHttpResponse> {
  if (!ep.serverKeygen) return textError(404, 'server key generation is not enabled on this EST endpoint');
  const auth = await authenticate(req, ep, ctx);
  if (!auth.ok) return auth.response;
  const csr = readCsr(req);
  if (!csr.ok) return csr.response;
  const { privateKey, algorithm } = newKey(ep.csrAttributes === 'none' ? 'ecdsa-p256' : ep.csrAttributes);
  const ours = resign(csr.der, privateKey, algorithm);
  if (!ours) return textError(400, 'the request is not a PKCS#10 request this server can re-key');
  const { response, issued } = await enrollCsr(ctx, ep, ours, auth.requester, undefined);
  if (!issued) return response;
  const boundary = `certctl-est-${Date.now().toString(36)}`;
  const keyDer = privateKey.export({ type: 'pkcs8', format: 'der' });
  const part = (type: string, body: string) => `--${boundary}\r\nContent-Type: ${type}\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}`;
  const body = [
    part('application/pkcs8', base64Lines(keyDer)),
    part('application/pkcs7-mime; smime-type=certs-only', response.body ?? ''),
    `--${boundary}--\r\n`,
  ].join('');
  return { status: 200, headers: { 'Content-Type': `multipart/mixed; boundary=${boundary}` }, body };
}

