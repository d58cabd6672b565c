import crypto from 'node:crypto';
import * as asn1js from 'asn1js';
import type { CmsContentCipher, PluginContext, ProtocolHttpResponse } from '@certctl/sdk';
import { certsOnly, envelopeFor } from './cms.js';
import { MESSAGE_TYPE, SCEP_OID, type PkiMessage } from './pki-message.js';

/*
 * CertRep (RFC 8894 3.3.2): the server's answer to every pkiMessage, a SignedData
 * signed by the RA (a kernel call; the RA key never comes here) with pkiStatus
 * SUCCESS (content: the issued certificate, certs-only, enveloped for the client
 * with the content cipher its request used),
 * PENDING or FAILURE (no content, failInfo saying why).
 */

const FAIL_INFO = { badAlg: '0', badMessageCheck: '1', badRequest: '2', badTime: '3', badCertId: '4' } as const;
export type FailInfo = keyof typeof FAIL_INFO;

const STATUS = { SUCCESS: '0', FAILURE: '2', PENDING: '3' } as const;

export type Outcome =
  | { status: 'SUCCESS'; certificatesDer: Buffer[]; cipher: CmsContentCipher }
  | { status: 'PENDING' }
  | { status: 'FAILURE'; failInfo: FailInfo };

const der = (v: asn1js.BaseBlock): string => Buffer.from(v.toBER(false)).toString('base64');
const printable = (s: string) => der(new asn1js.PrintableString({ value: s }));
const octetString = (b: Buffer) => der(new asn1js.OctetString({ valueHex: new Uint8Array(b).slice().buffer }));

const PKI_MESSAGE_TYPE = 'application/x-pki-message';

export async function certRep(ctx: PluginContext, issuerId: string, request: PkiMessage, outcome: Outcome): Promise<ProtocolHttpResponse> {
  const attributes = [
    { type: SCEP_OID.messageType, valuesBase64: [printable(String(MESSAGE_TYPE.CertRep))] },
    { type: SCEP_OID.transactionID, valuesBase64: [request.transactionIdDer.toString('base64')] },
    { type: SCEP_OID.pkiStatus, valuesBase64: [printable(STATUS[outcome.status])] },
    { type: SCEP_OID.recipientNonce, valuesBase64: [octetString(request.senderNonce)] },
    { type: SCEP_OID.senderNonce, valuesBase64: [octetString(crypto.randomBytes(16))] },
    ...(outcome.status === 'FAILURE' ? [{ type: SCEP_OID.failInfo, valuesBase64: [printable(FAIL_INFO[outcome.failInfo])] }] : []),
  ];
  const content = outcome.status === 'SUCCESS' ? envelopeFor(request.signer.raw, certsOnly(outcome.certificatesDer), outcome.cipher).toString('base64') : undefined;
  const { signedDataBase64 } = await ctx.issuance.raSign({ issuerId, ...(content ? { contentBase64: content } : {}), signedAttributes: attributes });
  return { status: 200, headers: { 'Content-Type': PKI_MESSAGE_TYPE }, body: signedDataBase64, bodyEncoding: 'base64' };
}

/** A plain-text HTTP error, for requests that cannot get a CertRep (not a pkiMessage at all, wrong method...). */
export const textError = (status: number, message: string, headers: Record<string, string> = {}): ProtocolHttpResponse => ({
  status,
  headers: { 'Content-Type': 'text/plain; charset=utf-8', ...headers },
  body: `${message}\n`,
});
