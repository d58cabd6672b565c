import 'reflect-metadata';
import crypto from 'node:crypto';
import net from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface SplitSans {
  dns: string[];
  ip: string[];
  email: string[];
}

/** SANs by type, as the seeds' agent does: with an @ it is an email (rfc822Name), an IP literal is an IP, anything else a DNS name. */
export function splitSans(sans: readonly string[]): SplitSans {
  const out: SplitSans = { dns: [], ip: [], email: [] };
  for (const raw of sans) {
    const s = raw.trim();
    if (!s) continue;
    if (s.includes('@')) out.email.push(s);
    else if (net.isIP(s.replace(/^\[|\]$/g, ''))) out.ip.push(s.replace(/^\[|\]$/g, ''));
    else out.dns.push(s);
  }
  return out;
}

/** RFC 4514 escaping, so a common name with commas or plus signs stays one CN. */
export const escapeRdnValue = (v: string): string => v.replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');

type WebAlg = { import: crypto.webcrypto.EcKeyImportParams | crypto.webcrypto.RsaHashedImportParams | crypto.webcrypto.Algorithm; sign: crypto.webcrypto.EcdsaParams | crypto.webcrypto.Algorithm };

/**
 * How WebCrypto imports and signs with the key. The hash follows the key's strength
 * (SHA-384 for P-384, SHA-512 for P-521); RSA signs PKCS#1 v1.5 with SHA-256, which
 * every CA accepts.
 */
function webAlgorithm(key: crypto.KeyObject): WebAlg {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = details.namedCurve === 'secp384r1' ? 'P-384' : details.namedCurve === 'secp521r1' ? 'P-521' : 'P-256';
      const hash = curve === 'P-384' ? 'SHA-384' : curve === 'P-521' ? 'SHA-512' : 'SHA-256';
      return { import: { name: 'ECDSA', namedCurve: curve }, sign: { name: 'ECDSA', hash } };
    }
    case 'rsa':
      return { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
    case 'ed25519':
      return { import: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
    default:
      throw new Error(`key type ${key.asymmetricKeyType ?? 'unknown'} cannot sign a CSR here`);
  }
}

/**
 * A PKCS#10 request signed with the agent's key: subject CN, and the SANs split by
 * type. When the certificate lists no SANs, its common name (if a host name or an
 * IP) becomes the only SAN, since clients match names against SANs alone.
 */
export async function buildCsr(opts: { commonName: string; sans: readonly string[]; privateKey: crypto.KeyObject; publicKey: crypto.KeyObject }): Promise<string> {
  const subtle = crypto.webcrypto.subtle;
  const alg = webAlgorithm(opts.privateKey);
  const keys = {
    privateKey: await subtle.importKey('pkcs8', opts.privateKey.export({ type: 'pkcs8', format: 'der' }), alg.import, false, ['sign']),
    publicKey: await subtle.importKey('spki', opts.publicKey.export({ type: 'spki', format: 'der' }), alg.import, true, ['verify']),
  };
  const sans = opts.sans.length ? opts.sans : opts.commonName.includes('@') ? [] : [opts.commonName];
  const split = splitSans(sans);
  const names: x509.JsonGeneralName[] = [
    ...split.dns.map((value) => ({ type: 'dns' as const, value })),
    ...split.ip.map((value) => ({ type: 'ip' as const, value })),
    ...split.email.map((value) => ({ type: 'email' as const, value })),
  ];
  const extensions: x509.Extension[] = names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${escapeRdnValue(opts.commonName)}`,
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: alg.sign,
    extensions,
  });
  return csr.toString('pem');
}
