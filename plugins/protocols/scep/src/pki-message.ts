import { X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { OID, octets, pkiFrom, signatureValid, signerCertificate, stringOf } from './cms.js';

/*
 * A SCEP pkiMessage (RFC 8894 3.2): a CMS SignedData signed by the client, whose
 * signed attributes carry the SCEP fields and whose content (for requests) is an
 * EnvelopedData for the RA. This reads it and checks the client's signature; it
 * does not decrypt.
 */

export const SCEP_OID = {
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionID: '2.16.840.1.113733.1.9.7',
};

export const MESSAGE_TYPE = { CertRep: 3, RenewalReq: 17, UpdateReq: 18, PKCSReq: 19, CertPoll: 20, GetCert: 21, GetCRL: 22 } as const;

export interface PkiMessage {
  messageType: number;
  transactionId: string;
  /** The transactionID value as the client encoded it (PrintableString, or what it used instead): echoed as is. */
  transactionIdDer: Buffer;
  senderNonce: Buffer;
  /** The certificate the client signed with (self-signed for PKCSReq, the current one for RenewalReq). */
  signer: X509Certificate;
  /** The encapsulated content (an EnvelopedData), or null. */
  content: Buffer | null;
  signatureOk: boolean;
}

/** Why a body is not a pkiMessage we can answer with a CertRep (the HTTP layer then says 400). */
export type ParsedMessage = { ok: true; message: PkiMessage } | { ok: false; reason: string };

const MAX_TRANSACTION_ID = 128;

function attribute(signer: pkijs.SignerInfo, type: string): unknown {
  const attr = signer.signedAttrs?.attributes.find((a) => a.type === type);
  return attr && attr.values.length === 1 ? attr.values[0] : undefined;
}

export function parsePkiMessage(der: Buffer): ParsedMessage {
  const info = pkiFrom(der, (schema) => new pkijs.ContentInfo({ schema }));
  if (!info) return { ok: false, reason: 'the body is not a DER CMS ContentInfo' };
  if (info.contentType !== OID.signedData) return { ok: false, reason: 'the message is not a CMS SignedData' };
  let sd: pkijs.SignedData;
  try {
    sd = new pkijs.SignedData({ schema: info.content });
  } catch {
    return { ok: false, reason: 'the SignedData is malformed' };
  }
  if (sd.signerInfos.length !== 1) return { ok: false, reason: 'a pkiMessage has exactly one signer' };
  const signerInfo = sd.signerInfos[0];
  const certs = (sd.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate);
  const signerCert = signerCertificate(signerInfo, certs);
  if (!signerCert) return { ok: false, reason: 'the signer\'s certificate is not in the message' };

  const messageType = Number(stringOf(attribute(signerInfo, SCEP_OID.messageType)));
  const transactionValue = attribute(signerInfo, SCEP_OID.transactionID);
  const transactionId = stringOf(transactionValue);
  const nonce = attribute(signerInfo, SCEP_OID.senderNonce);
  if (!Number.isInteger(messageType)) return { ok: false, reason: 'the messageType attribute is missing' };
  if (!transactionId || transactionId.length > MAX_TRANSACTION_ID) return { ok: false, reason: `the transactionID attribute is missing or longer than ${MAX_TRANSACTION_ID}` };
  if (!(nonce instanceof asn1js.OctetString)) return { ok: false, reason: 'the senderNonce attribute is missing' };
  const senderNonce = octets(nonce);
  if (senderNonce.length < 8 || senderNonce.length > 64) return { ok: false, reason: 'the senderNonce must be 8 to 64 bytes' };

  let signer: X509Certificate;
  try {
    signer = new X509Certificate(Buffer.from(signerCert.toSchema().toBER(false)));
  } catch {
    return { ok: false, reason: 'the signer\'s certificate cannot be read' };
  }
  const eContent = sd.encapContentInfo.eContent;
  const content = eContent instanceof asn1js.OctetString ? octets(eContent) : null;
  const transactionIdDer = Buffer.from((transactionValue as asn1js.BaseBlock).toBER(false));
  return { ok: true, message: { messageType, transactionId, transactionIdDer, senderNonce, signer, content, signatureOk: signatureValid(signerInfo, signer, content) } };
}
