import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { VerificationReport } from '@certctl/kernel';
import { verifyEndpointProblem } from '@certctl/sdk/deploy';

export interface VerifyEndpoint {
  host: string;
  port: number;
  server_name?: string;
  timeout_ms?: number;
}

/** The target config's optional `verify` block, checked by the deploy pipeline's own rule; null when absent. */
export function verifyEndpointOf(config: Record<string, unknown>): VerifyEndpoint | { problem: string } | null {
  const v = config.verify;
  if (v === undefined || v === null) return null;
  const problem = verifyEndpointProblem(v);
  return problem ? { problem } : (v as VerifyEndpoint);
}

/**
 * The SHA-256 of the leaf certificate an endpoint serves. The chain is not
 * checked on purpose: the question is only whether the endpoint serves the
 * certificate just deployed, which the fingerprint answers exactly.
 */
export function servedFingerprint(ep: VerifyEndpoint, defaultTimeoutMs: number): Promise<string> {
  const timeout = ep.timeout_ms ?? defaultTimeoutMs;
  const servername = ep.server_name ?? (net.isIP(ep.host) ? undefined : ep.host);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: ep.host, port: ep.port, rejectUnauthorized: false, ...(servername ? { servername } : {}), ALPNProtocols: ['http/1.1'] });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake within ${timeout} ms`)), timeout);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const raw = socket.getPeerCertificate()?.raw;
      socket.end();
      if (!raw) reject(new Error('the endpoint presented no certificate'));
      else resolve(crypto.createHash('sha256').update(raw).digest('hex'));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message));
    });
  });
}

const PROBE_INTERVAL_MS = 250;

/**
 * Probes the endpoint and compares with the deployed certificate's fingerprint.
 * Servers switch certificates asynchronously after a reload (HAProxy and Apache
 * workers drain for a while), so a mismatch is probed again until `windowMs` has
 * passed; only a mismatch that lasts the whole window fails the deployment.
 */
export async function verifyDeployment(ep: VerifyEndpoint, expectedSha256: string, defaultTimeoutMs: number, windowMs = 15_000): Promise<VerificationReport> {
  const endpoint = `${net.isIP(ep.host) === 6 ? `[${ep.host}]` : ep.host}:${ep.port}${ep.server_name ? ` (SNI ${ep.server_name})` : ''}`.slice(0, 300);
  const expected = expectedSha256.toLowerCase();
  const deadline = Date.now() + windowMs;
  for (;;) {
    let report: VerificationReport;
    try {
      const observed = await servedFingerprint(ep, defaultTimeoutMs);
      if (observed === expected) return { status: 'success', endpoint, expected_fingerprint_sha256: expected, observed_fingerprint_sha256: observed };
      report = { status: 'failed', endpoint, expected_fingerprint_sha256: expected, observed_fingerprint_sha256: observed, error: 'the endpoint serves a different certificate' };
    } catch (err) {
      report = { status: 'failed', endpoint, expected_fingerprint_sha256: expected, error: `cannot probe the endpoint: ${(err as Error).message}`.slice(0, 2000) };
    }
    if (Date.now() + PROBE_INTERVAL_MS >= deadline) return report;
    await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
  }
}
