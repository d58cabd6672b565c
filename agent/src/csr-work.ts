import type { AgentCsrRequest, CsrWorkItem } from '@certctl/kernel';
import { keySpec, type KeyStore } from './key-store.js';

export class CsrWorkRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsrWorkRefused';
  }
}

/**
 * An AwaitingCSR job: a fresh key of the type the item names (the certificate
 * profile's choice; ECDSA P-256 when the item names none), written 0600 to the key store
 * before the CSR leaves, and the CSR for it. Only the CSR (public key, names,
 * signature) goes to the control plane.
 */
export async function makeCsrForItem(item: CsrWorkItem, keys: KeyStore): Promise<AgentCsrRequest & { keyPath: string }> {
  const algorithm = item.key_algorithm || 'ECDSA-P256';
  if (typeof algorithm !== 'string' || !keySpec(algorithm)) throw new CsrWorkRefused(`key algorithm ${JSON.stringify(String(algorithm).slice(0, 40))} is not supported by this agent`);
  if (typeof item.common_name !== 'string' || !item.common_name.trim() || item.common_name.length > 256) throw new CsrWorkRefused('the work item has no usable common name');
  const sans = Array.isArray(item.sans) ? item.sans : [];
  if (sans.length > 1000 || sans.some((s) => typeof s !== 'string' || s.length > 256 || s.includes('\0'))) throw new CsrWorkRefused('the work item has unusable SANs');
  const key = await keys.createKey(item.certificate_id, algorithm);
  // Loaded on first use: @peculiar/x509 takes ~0.15 s to import, and most agent runs never make a CSR.
  const { buildCsr } = await import('./csr.js');
  const csrPem = await buildCsr({ commonName: item.common_name.trim(), sans, privateKey: key.privateKey, publicKey: key.publicKey });
  return { job_id: item.job_id, csr_pem: csrPem, keyPath: key.keyPath };
}
