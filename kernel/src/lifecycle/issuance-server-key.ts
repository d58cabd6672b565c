import { webcrypto } from 'node:crypto';
import type { Knex } from 'knex';
import net from 'node:net';
import { derToPem } from '../crypto/der.js';
import { x509 } from '../crypto/x509-setup.js';
import type { KernelServices } from '../kernel-services.js';

/**
 * Server key generation (CERTCTL_KEYGEN_MODE=server, demo only): the control
 * plane makes an RSA-2048 key and a CSR for the certificate's names, keeps the
 * key sealed with the config cipher in certificate_keys, and hands it only to the
 * agent that deploys the version (H3a's deploy work item). Never in an API response.
 */

export interface ServerKey {
  privateKeyPem: string;
  csrPem: string;
  keyAlgorithm: 'RSA';
  keySize: 2048;
}

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;

function sanEntry(name: string): { type: 'dns' | 'ip' | 'email'; value: string } {
  if (net.isIP(name)) return { type: 'ip', value: name };
  if (name.includes('@')) return { type: 'email', value: name };
  return { type: 'dns', value: name };
}

/** A new RSA-2048 key and a CSR (CN + SANs) signed with it. */
export async function generateServerKey(commonName: string, sans: string[]): Promise<ServerKey> {
  const keys = (await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [commonName] }],
    keys,
    signingAlgorithm: RSA,
    extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans.map(sanEntry))] : [],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { privateKeyPem: derToPem(Buffer.from(pkcs8), 'PRIVATE KEY'), csrPem: csr.toString('pem'), keyAlgorithm: 'RSA', keySize: 2048 };
}

/** Keeps a generated key (sealed) for the job that will use it. */
export async function storeServerKey(
  k: Pick<KernelServices, 'cipher'>,
  trx: Knex.Transaction,
  row: { id: string; certificateId: string; jobId: string | null; key: ServerKey },
): Promise<void> {
  await trx('certificate_keys').insert({
    id: row.id,
    certificate_id: row.certificateId,
    job_id: row.jobId,
    key_algorithm: row.key.keyAlgorithm,
    key_size: row.key.keySize,
    encrypted_key: k.cipher.encrypt(row.key.privateKeyPem),
  });
}

/** The decrypted private key of a version made with a server key; null when the agent made the key. */
export async function serverKeyForVersion(k: Pick<KernelServices, 'cipher' | 'db'>, versionId: string, db: Knex | Knex.Transaction = k.db.knex): Promise<string | null> {
  const row = (await db('certificate_keys').where({ version_id: versionId }).first('encrypted_key')) as { encrypted_key: string } | undefined;
  return row ? k.cipher.decrypt(row.encrypted_key) : null;
}
