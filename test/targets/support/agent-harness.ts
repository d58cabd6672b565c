import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DeployResult, Json } from '@certctl/sdk';
import { createRealAgent, type RealAgent } from '../../support/real-agent-context.js';
import { makeTestPki, type TestCert } from './certs.js';

/**
 * One real agent plugin host, a throwaway PKI and a temp dir for a target's
 * tests: `deploy` stores the certificate's key as the agent's keygen would and
 * runs the plugin's deploy in a worker with that job's grants.
 */
export interface AgentHarness {
  dir: string;
  agent: RealAgent;
  pki: ReturnType<typeof makeTestPki>;
  /** A fresh directory under the harness's temp dir. */
  mkdir(name: string): string;
  deploy(type: string, config: Record<string, unknown>, cert: TestCert, opts?: { keyPem?: string; id?: string }): Promise<DeployResult>;
  /** deploy, but a config the agent refuses (schema, grants) comes back as `refused: ...` instead of a throw. */
  outcome(type: string, config: Record<string, unknown>, cert: TestCert): Promise<string>;
  call<T = Record<string, Json>>(type: string, config: Record<string, unknown>, method: string, request: Json, id?: string): Promise<T>;
  cleanup(): void;
}

export function createAgentHarness(prefix: string): AgentHarness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `certctl-${prefix}-`));
  const agent = createRealAgent(dir);
  const pki = makeTestPki();
  let n = 0;
  const deploy: AgentHarness['deploy'] = (type, config, cert, opts = {}) => {
    const keyPath = agent.storeKey(`${type}-${++n}`, opts.keyPem ?? cert.keyPem);
    const request = { certificateId: `mc-${type}`, certificatePem: cert.certificatePem, chainPem: cert.chainPem, keyPath, fingerprintSha256: cert.fingerprintSha256 };
    return agent.call<DeployResult>({ id: opts.id ?? `tgt-${type}`, type, config }, 'deploy', request as unknown as Json, { keyPath });
  };
  return {
    dir, agent, pki, deploy,
    mkdir(name) {
      const d = path.join(dir, name);
      fs.mkdirSync(d, { recursive: true });
      return d;
    },
    outcome: (type, config, cert) => deploy(type, config, cert).then((r) => (r.status === 'failed' ? `failed: ${r.reason}` : r.status), (err: Error) => `refused: ${err.message}`),
    call: (type, config, method, request, id) => agent.call({ id: id ?? `tgt-${type}`, type, config }, method, request),
    cleanup() {
      pki.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every regular file under `dir` (relative name -> content), for "nothing changed" checks. */
export function snapshotDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      const p = path.join(e.parentPath, e.name);
      out[path.relative(dir, p)] = fs.readFileSync(p, 'utf8');
    }
  }
  return out;
}
