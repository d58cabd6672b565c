import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { AgentKeyAlgorithm } from '@certctl/kernel';
import { ensurePrivateDir, readOptional, writePrivateFile } from './private-files.js';

/**
 * The agent's private keys. Layout, under CERTCTL_KEY_DIR:
 *
 *   <certificate_id>/<key_id>.key   one file per key made for that certificate (0600, dir 0700)
 *   <certificate_id>/deployed.json  { current, previous }: the key ids last deployed
 *
 * key_id is the SHA-256 of the key's public half (SubjectPublicKeyInfo), first 32
 * hex digits. So a certificate names its own key file: a deploy item needs no job id
 * or version bookkeeping, the agent hashes the public key in the certificate it is
 * given. A renewal makes a new key beside the old one; the old one stays usable
 * (the deployed version keeps working, and a rollback finds its key) until the new
 * certificate is deployed. After that, only the new key, the one it replaced and
 * keys made since (a renewal in flight) are kept.
 */

const CERT_ID = /^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$/;

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyStoreError';
  }
}

export interface StoredKey {
  keyId: string;
  keyPath: string;
}

const generateKeyPair = promisify(crypto.generateKeyPair);
const EC_CURVES: Record<string, string> = { 'ECDSA-P256': 'P-256', 'ECDSA-P384': 'P-384', 'ECDSA-P521': 'P-521' };
/** RSA moduli the agent makes: what profiles may ask for (2048-16384 bits), whole bytes. */
const RSA_BITS = /^RSA-(\d{4,5})$/;

/** Parses a work item's key type; null when this agent does not make such keys. */
export function keySpec(algorithm: string): { type: 'ec'; curve: string } | { type: 'rsa'; bits: number } | { type: 'ed25519' } | null {
  if (EC_CURVES[algorithm]) return { type: 'ec', curve: EC_CURVES[algorithm] };
  if (algorithm === 'Ed25519') return { type: 'ed25519' };
  const bits = Number(RSA_BITS.exec(algorithm)?.[1] ?? 0);
  return bits >= 2048 && bits <= 16384 && bits % 8 === 0 ? { type: 'rsa', bits } : null;
}

/** Off the event loop: an RSA 4096 key takes long enough to stall heartbeats otherwise. */
async function generateKey(algorithm: AgentKeyAlgorithm): Promise<{ privateKey: crypto.KeyObject; publicKey: crypto.KeyObject }> {
  const spec = keySpec(algorithm);
  if (!spec) throw new KeyStoreError(`key algorithm ${JSON.stringify(String(algorithm).slice(0, 40))} is not supported by this agent`);
  if (spec.type === 'ec') return generateKeyPair('ec', { namedCurve: spec.curve });
  if (spec.type === 'rsa') return generateKeyPair('rsa', { modulusLength: spec.bits });
  return generateKeyPair('ed25519', undefined);
}

const keyIdOf = (spkiDer: Buffer) => crypto.createHash('sha256').update(spkiDer).digest('hex').slice(0, 32);

/** The key id a certificate's public key maps to. */
export function keyIdForCertificate(certificatePem: string): string {
  const cert = new crypto.X509Certificate(certificatePem);
  return keyIdOf(cert.publicKey.export({ type: 'spki', format: 'der' }));
}

export class KeyStore {
  constructor(readonly dir: string) {}

  private certDir(certificateId: string): string {
    if (typeof certificateId !== 'string' || !CERT_ID.test(certificateId)) throw new KeyStoreError(`certificate id ${JSON.stringify(String(certificateId).slice(0, 80))} is not a valid id`);
    return path.join(this.dir, certificateId);
  }

  async init(): Promise<void> {
    await ensurePrivateDir(this.dir);
  }

  /** A new key of the asked type (default ECDSA P-256) for the certificate, written 0600 before anything else sees it. */
  async createKey(certificateId: string, algorithm: AgentKeyAlgorithm = 'ECDSA-P256'): Promise<StoredKey & { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject }> {
    const dir = this.certDir(certificateId);
    const { privateKey, publicKey } = await generateKey(algorithm);
    const keyId = keyIdOf(publicKey.export({ type: 'spki', format: 'der' }));
    const keyPath = path.join(dir, `${keyId}.key`);
    await writePrivateFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    return { keyId, keyPath, privateKey, publicKey };
  }

  /** Stores a key the server made (CERTCTL_KEYGEN_MODE=server); it must belong to the certificate. */
  async storeServerKey(certificateId: string, privateKeyPem: string, certificatePem: string): Promise<StoredKey> {
    const dir = this.certDir(certificateId);
    let key: crypto.KeyObject;
    try {
      key = crypto.createPrivateKey(privateKeyPem);
    } catch {
      throw new KeyStoreError('the server-made private key cannot be parsed');
    }
    const keyId = keyIdOf(crypto.createPublicKey(key).export({ type: 'spki', format: 'der' }));
    if (keyId !== keyIdForCertificate(certificatePem)) throw new KeyStoreError("the server-made private key does not match the certificate's public key");
    const keyPath = path.join(dir, `${keyId}.key`);
    await writePrivateFile(keyPath, key.export({ type: 'pkcs8', format: 'pem' }) as string);
    return { keyId, keyPath };
  }

  /** The key file for this certificate's public key, or null when this agent does not hold it. */
  async findKeyFor(certificateId: string, certificatePem: string): Promise<StoredKey | null> {
    const keyId = keyIdForCertificate(certificatePem);
    const keyPath = path.join(this.certDir(certificateId), `${keyId}.key`);
    const st = await fs.lstat(keyPath).catch(() => null);
    return st?.isFile() ? { keyId, keyPath } : null;
  }

  /** Records a successful deploy and drops keys that can no longer be needed. */
  async markDeployed(certificateId: string, keyId: string): Promise<void> {
    const dir = this.certDir(certificateId);
    const statePath = path.join(dir, 'deployed.json');
    const prior = JSON.parse((await readOptional(statePath)) ?? '{}') as { current?: string; previous?: string };
    const state = prior.current === keyId ? prior : { current: keyId, previous: prior.current };
    await writePrivateFile(statePath, JSON.stringify(state));
    const currentStat = await fs.stat(path.join(dir, `${keyId}.key`)).catch(() => null);
    if (!currentStat) return;
    for (const name of await fs.readdir(dir)) {
      const m = /^([0-9a-f]{32})\.key$/.exec(name);
      if (!m || m[1] === state.current || m[1] === state.previous) continue;
      const st = await fs.stat(path.join(dir, name)).catch(() => null);
      // Newer keys belong to a renewal still under way.
      if (st && st.mtimeMs < currentStat.mtimeMs) await fs.rm(path.join(dir, name), { force: true });
    }
  }
}
