import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { Piscina } from 'piscina';
import {
  CryptoError, type CrlRequest, type CrlResult, type CryptoOutcome, type CryptoTask, type CsrInfo, type OcspResponderRequest, type OcspResponderResult,
  type OcspSignRequest, type SignCertificateRequest, type SignedCertificate,
} from './crypto-types.js';
import { CryptoTaskBatcher } from './crypto-batch.js';
import { VerifiedCsrs } from './verified-csrs.js';

export interface CryptoServiceOptions {
  log?: Logger;
  minThreads?: number;
  /**
   * Default: one per CPU, at most 4. The kernel's main thread mostly hands work
   * on (to this pool, plugin workers and the database), so keeping a CPU free for
   * it left one of two CPUs' worth of signing idle: issuance measured ~15% faster
   * with two threads than one on a 2-CPU machine (docs/benchmarks.md).
   */
  maxThreads?: number;
  idleTimeoutMs?: number;
  /** A task that takes longer is abandoned and its thread replaced. */
  taskTimeoutMs?: number;
}

/** The compiled worker script (kernel/dist), also when the kernel runs from sources in tests. */
export function cryptoWorkerScript(): string {
  const here = fileURLToPath(new URL('./crypto-worker.js', import.meta.url));
  if (fs.existsSync(here)) return here;
  const dist = here.replace(/([\\/])kernel\1src\1/, '$1kernel$1dist$1');
  if (fs.existsSync(dist)) return dist;
  throw new CryptoError('unavailable', `the crypto worker script is not built (${dist}); run npm run build`);
}

/**
 * CSR verification and certificate signing on a dedicated Piscina pool that
 * never loads plugin code. Issuer plugins never see a CA key: the kernel calls
 * this service with the key and hands the plugin (or the caller) the result.
 * The pool starts on first use.
 */
export class CryptoService {
  private pool: Piscina | null = null;
  private closed = false;
  private readonly verified = new VerifiedCsrs();
  private readonly batcher = new CryptoTaskBatcher((tasks) => this.send(tasks), { maxBatch: 16, threads: () => this.pool?.options.maxThreads ?? 1 });

  constructor(private readonly opts: CryptoServiceOptions = {}) {}

  private ensurePool(): Piscina {
    if (this.closed) throw new CryptoError('unavailable', 'the crypto service is shut down');
    if (!this.pool) {
      const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
      const maxThreads = this.opts.maxThreads ?? Math.min(4, Math.max(1, cpus));
      this.pool = new Piscina({
        filename: cryptoWorkerScript(),
        minThreads: Math.min(this.opts.minThreads ?? 0, maxThreads),
        maxThreads,
        idleTimeout: this.opts.idleTimeoutMs ?? 60_000,
        env: {},
        closeTimeout: 5_000,
        // Message-based hand-off only: with Atomics, every task also costs a futex wake on top of the message.
        atomics: 'disabled',
      });
      this.pool.on('error', (err: unknown) => this.opts.log?.warn({ err }, 'crypto pool error'));
    }
    return this.pool;
  }

  private async run<T>(task: CryptoTask): Promise<T> {
    this.ensurePool();
    const outcome = (await this.batcher.submit(task)) as CryptoOutcome<T>;
    if (!outcome.ok) throw new CryptoError(outcome.code, outcome.message);
    return outcome.value;
  }

  /** One pool task for one task, one `batch` task for several; a failed pool task fails them all with a CryptoError. */
  private async send(tasks: CryptoTask[]): Promise<CryptoOutcome<unknown>[]> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.opts.taskTimeoutMs ?? 30_000);
    try {
      const pool = this.ensurePool();
      if (tasks.length === 1) return [(await pool.run(tasks[0], { signal: abort.signal })) as CryptoOutcome<unknown>];
      const outcome = (await pool.run({ op: 'batch', tasks } satisfies CryptoTask, { signal: abort.signal })) as CryptoOutcome<CryptoOutcome<unknown>[]>;
      if (!outcome.ok) throw new CryptoError(outcome.code, outcome.message);
      return outcome.value;
    } catch (err) {
      if (err instanceof CryptoError) throw err;
      const e = err as { name?: string; message?: string };
      const ops = [...new Set(tasks.map((t) => t.op))].join(', ');
      if (e?.name === 'AbortError') throw new CryptoError('timeout', `crypto task ${ops} did not finish in time`);
      if (this.closed) throw new CryptoError('unavailable', 'the crypto service is shut down');
      this.opts.log?.error({ err }, 'crypto worker died');
      throw new CryptoError('crashed', `crypto task ${ops} failed: ${e?.message ?? String(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Parses a PKCS#10 CSR and checks its signature; `valid: false` with a reason rather than a throw. */
  async verifyCsr(csr: string | Uint8Array): Promise<CsrInfo> {
    const info = await this.run<CsrInfo>({ op: 'verifyCsr', csr });
    if (info.valid) this.verified.add(VerifiedCsrs.digest(csr));
    return info;
  }

  /**
   * Signs a certificate for a CSR; throws CryptoError (csr_invalid, key_mismatch, bad_request, ...).
   * The CSR's signature is checked unless these exact bytes passed verifyCsr here before.
   */
  signCertificate(request: SignCertificateRequest): Promise<SignedCertificate> {
    const csrVerified = typeof request?.csrPem === 'string' && this.verified.has(VerifiedCsrs.digest(request.csrPem));
    return this.run<SignedCertificate>({ op: 'signCertificate', request, ...(csrVerified ? { csrVerified } : {}) });
  }

  /** Encodes and signs a CRL (crl-encoder.ts); the result's der is the whole CertificateList. */
  encodeCrl(request: CrlRequest): Promise<CrlResult> {
    return this.run<CrlResult>({ op: 'encodeCrl', request });
  }

  /** Makes a delegated OCSP responder key and certificate signed by the CA. */
  issueOcspResponder(request: OcspResponderRequest): Promise<OcspResponderResult> {
    return this.run<OcspResponderResult>({ op: 'issueOcspResponder', request });
  }

  /** Builds and signs an OCSPResponse (status successful). */
  signOcspResponse(request: OcspSignRequest): Promise<Uint8Array> {
    return this.run<Uint8Array>({ op: 'signOcspResponse', request });
  }

  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    await pool?.destroy().catch(() => {});
  }
}
