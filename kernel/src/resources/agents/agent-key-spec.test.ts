import { describe, expect, it } from 'vitest';
import { agentKeyAlgorithm } from './agent-key-spec.js';

describe('the key type an agent is asked to make', () => {
  it('defaults to ECDSA P-256 without a profile or key rules', () => {
    expect(agentKeyAlgorithm(null)).toBe('ECDSA-P256');
    expect(agentKeyAlgorithm([])).toBe('ECDSA-P256');
    expect(agentKeyAlgorithm('[]')).toBe('ECDSA-P256');
  });

  it('takes the first allowed type at its smallest allowed size', () => {
    expect(agentKeyAlgorithm([{ algorithm: 'RSA', min_size: 3072 }, { algorithm: 'ECDSA', min_size: 256 }])).toBe('RSA-3072');
    expect(agentKeyAlgorithm('[{"algorithm":"ECDSA","min_size":384}]')).toBe('ECDSA-P384');
    expect(agentKeyAlgorithm([{ algorithm: 'ECDSA', min_size: 521 }])).toBe('ECDSA-P521');
    expect(agentKeyAlgorithm([{ algorithm: 'RSA', min_size: 2048 }])).toBe('RSA-2048');
    expect(agentKeyAlgorithm([{ algorithm: 'RSA', min_size: 2500 }])).toBe('RSA-3072');
    expect(agentKeyAlgorithm([{ algorithm: 'RSA', min_size: 4000 }])).toBe('RSA-4096');
    expect(agentKeyAlgorithm([{ algorithm: 'RSA', min_size: 6001 }])).toBe('RSA-6008');
  });

  it('picks Ed25519 only for an issuer that signs Ed25519 keys, unless nothing else is allowed', () => {
    const edFirst = [{ algorithm: 'Ed25519' }, { algorithm: 'ECDSA', min_size: 384 }];
    expect(agentKeyAlgorithm(edFirst, 'local-ca')).toBe('Ed25519');
    expect(agentKeyAlgorithm(edFirst, 'acme')).toBe('ECDSA-P384');
    expect(agentKeyAlgorithm([{ algorithm: 'Ed25519' }], 'acme')).toBe('Ed25519');
  });
});
