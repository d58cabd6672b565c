import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { pemCertificates } from '../crypto/der.js';
import { CaError } from './ca-errors.js';
import { certificateFacts, keyAlgorithmOf, type CaCertificateFacts } from './ca-certificate.js';

export interface ConfiguredCaPaths {
  certPath?: string;
  keyPath?: string;
}

/** The operator's CA as read from CERTCTL_CA_CERT_PATH (the CA first, then any certificates above it). */
export interface ConfiguredCa {
  certificatePem: string;
  /** Certificates above the CA from the same file, nearest first. */
  chainPem: string[];
  facts: CaCertificateFacts;
  keyAlgorithm: string;
}

async function readSetting(path: string, setting: string): Promise<string> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new CaError('ca_invalid', `${setting} (${path}) cannot be read: ${code}`);
  }
}

function requirePaths(paths: ConfiguredCaPaths): { certPath: string; keyPath: string } {
  if (!paths.certPath || !paths.keyPath) {
    throw new CaError('ca_not_configured', 'sub-CA mode needs CERTCTL_CA_CERT_PATH and CERTCTL_CA_KEY_PATH set on the kernel (the CA certificate and its private key, PEM)');
  }
  return { certPath: paths.certPath, keyPath: paths.keyPath };
}

/** Parses the operator's key file; a key that is encrypted, unreadable or not PEM is refused without quoting it. */
function parseKey(pem: string, keyPath: string): crypto.KeyObject {
  if (/ENCRYPTED/.test(pem)) throw new CaError('ca_invalid', `CERTCTL_CA_KEY_PATH (${keyPath}) holds an encrypted key; give certctl the unencrypted key in a file only it can read`);
  try {
    return crypto.createPrivateKey(pem);
  } catch {
    throw new CaError('ca_invalid', `CERTCTL_CA_KEY_PATH (${keyPath}) does not hold a PEM private key (PKCS#8, PKCS#1 or SEC1)`);
  }
}

/**
 * Reads and checks the operator's sub-CA. Refused, with the reason: settings not
 * given; unreadable files; no certificate; a certificate that is not a CA
 * (BasicConstraints CA:TRUE) or lacks keyCertSign; one outside its validity; a
 * certificate above it in the file that did not sign it; a key that is not the
 * certificate's or of a type the signer does not support.
 */
export async function loadConfiguredCa(paths: ConfiguredCaPaths, now = Date.now()): Promise<ConfiguredCa> {
  const { certPath, keyPath } = requirePaths(paths);
  const pems = pemCertificates(await readSetting(certPath, 'CERTCTL_CA_CERT_PATH'));
  if (!pems.length) throw new CaError('ca_invalid', `CERTCTL_CA_CERT_PATH (${certPath}) holds no PEM certificate`);
  let facts: CaCertificateFacts;
  try {
    facts = certificateFacts(pems[0]);
  } catch (err) {
    throw new CaError('ca_invalid', `CERTCTL_CA_CERT_PATH (${certPath}): the certificate cannot be parsed: ${(err as Error).message}`);
  }
  if (!facts.isCa) throw new CaError('ca_invalid', `CERTCTL_CA_CERT_PATH (${certPath}): ${facts.subject} is not a CA certificate (BasicConstraints CA:TRUE is missing)`);
  if (!facts.keyCertSign) throw new CaError('ca_invalid', `CERTCTL_CA_CERT_PATH (${certPath}): ${facts.subject} may not sign certificates (KeyUsage keyCertSign is missing)`);
  if (facts.notAfter.getTime() <= now) throw new CaError('ca_expired', `CERTCTL_CA_CERT_PATH (${certPath}): ${facts.subject} expired on ${facts.notAfter.toISOString()}`);
  if (facts.notBefore.getTime() > now + 5 * 60_000) throw new CaError('ca_invalid', `CERTCTL_CA_CERT_PATH (${certPath}): ${facts.subject} is not valid before ${facts.notBefore.toISOString()}`);
  for (let i = 1; i < pems.length; i++) {
    let ok = false;
    try {
      const child = new crypto.X509Certificate(pems[i - 1]);
      const parent = new crypto.X509Certificate(pems[i]);
      ok = child.checkIssued(parent) && child.verify(parent.publicKey);
    } catch {
      ok = false;
    }
    if (!ok) throw new CaError('ca_invalid', `CERTCTL_CA_CERT_PATH (${certPath}): certificate ${i + 1} in the file did not sign certificate ${i}; list the CA first, then its issuers in order`);
  }

  const key = parseKey(await readSetting(keyPath, 'CERTCTL_CA_KEY_PATH'), keyPath);
  const keyAlgorithm = keyAlgorithmOf(key);
  if (!keyAlgorithm) throw new CaError('ca_invalid', `CERTCTL_CA_KEY_PATH (${keyPath}): keys of type ${key.asymmetricKeyType ?? 'unknown'} cannot sign here (RSA 2048+, ECDSA P-256/P-384/P-521, Ed25519)`);
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  if (!spki.equals(facts.spki)) throw new CaError('ca_invalid', `CERTCTL_CA_KEY_PATH (${keyPath}) is not the private key of the certificate in CERTCTL_CA_CERT_PATH (${certPath})`);
  return { certificatePem: pems[0], chainPem: pems.slice(1), facts, keyAlgorithm };
}

/** The configured CA's key for one signature, read from the file on use (never stored by certctl). */
export async function readConfiguredKey(paths: ConfiguredCaPaths): Promise<string> {
  const { keyPath } = requirePaths(paths);
  const pem = await readSetting(keyPath, 'CERTCTL_CA_KEY_PATH');
  parseKey(pem, keyPath);
  return pem;
}
