/**
 * The agent protocol: what travels between the control plane and `certctl agent`.
 * The agent only ever calls the server (pull-only); every route below is under the
 * agent's own id and answers only to that agent's API key (agent.operate).
 *
 *   POST /api/v1/agents/register            bootstrap token -> agent record + its API key (once)
 *   POST /api/v1/agents/{id}/heartbeat      host facts (exists)
 *   GET  /api/v1/agents/{id}/work           work for this agent (CSR requests, deployments)
 *   POST /api/v1/agents/{id}/csr            a CSR for an AwaitingCSR job
 *   POST /api/v1/agents/{id}/jobs/{job_id}/result   a deployment's outcome
 *   POST /api/v1/jobs/{id}/verify           post-deploy TLS verification result (seeds)
 *   GET  /api/v1/jobs/{id}/verification     its status
 *   POST /api/v1/agents/{id}/discoveries    certificates found on disk
 */

export interface AgentHostFacts {
  hostname?: string;
  os?: string;
  platform?: string;
  architecture?: string;
  ip_address?: string;
  version?: string;
}

/** POST /api/v1/agents/register, authorised by `Authorization: Bearer <CERTCTL_AGENT_BOOTSTRAP_TOKEN>`. */
export interface AgentRegisterRequest extends AgentHostFacts {
  name: string;
  /** Optional readable id; generated when omitted. */
  id?: string;
}

export interface AgentRegisterResponse {
  agent: { id: string; name: string; status: string };
  /** Shown once: the agent stores it (0600) in its state directory. */
  api_key: { id: string; key: string };
}

/** An AwaitingCSR Issuance/Renewal job: make a key (kept on the agent) and send a CSR. */
export interface CsrWorkItem {
  kind: 'csr';
  job_id: string;
  job_type: 'Issuance' | 'Renewal';
  certificate_id: string;
  common_name: string;
  sans: string[];
  /** The key to make: the first key type the certificate's profile allows (default ECDSA-P256). */
  key_algorithm: AgentKeyAlgorithm;
}

/**
 * A key type an agent makes: an ECDSA curve, Ed25519, or RSA with its modulus bits
 * (2048, 3072, 4096, or a larger size a profile insists on).
 */
export type AgentKeyAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'ECDSA-P521' | 'Ed25519' | `RSA-${number}`;

/** A Deployment job, leased to this agent until `lease_expires_at`. */
export interface DeployWorkItem {
  kind: 'deploy';
  job_id: string;
  certificate_id: string;
  /** The certificate version being deployed. */
  version_id: string;
  serial_number: string;
  fingerprint_sha256: string;
  certificate_pem: string;
  /** Intermediates, issuing CA first; the root is not included. */
  chain_pem: string[];
  /**
   * Where the private key is. `agent`: in the agent's key store, made by this agent for
   * this certificate. `server` (CERTCTL_KEYGEN_MODE=server, demo only): the key itself.
   */
  key: { source: 'agent' } | { source: 'server'; private_key_pem: string };
  target: {
    id: string;
    name: string;
    /** The target plugin's id. */
    type: string;
    /** Validated instance config, secrets included (decrypted for this agent only). */
    config: Record<string, unknown>;
  };
  lease_expires_at: string;
  /** Which attempt this lease is; echo it in the result so a late answer to an older lease is refused. */
  attempt: number;
}

export type AgentWorkItem = CsrWorkItem | DeployWorkItem;

/** GET /api/v1/agents/{id}/work */
export interface AgentWorkResponse {
  data: AgentWorkItem[];
  /** When to poll again (the server may ask for less frequent polls under load). */
  poll_after_ms: number;
}

/** POST /api/v1/agents/{id}/csr -> 202 { job_id, status } */
export interface AgentCsrRequest {
  job_id: string;
  csr_pem: string;
}

/** POST /api/v1/agents/{id}/jobs/{job_id}/result */
export interface DeployResultRequest {
  status: 'Completed' | 'Failed';
  /** False when the target already had these exact bytes (no reload happened). */
  changed?: boolean;
  rolled_back?: boolean;
  error?: string;
  verification?: VerificationReport;
  /** The work item's `attempt`; when given, a result for an older lease of the job is a 409. */
  attempt?: number;
}

/** POST /api/v1/jobs/{id}/verify (also embedded in a deployment result). */
export interface VerificationReport {
  status: 'success' | 'failed' | 'skipped';
  endpoint?: string;
  expected_fingerprint_sha256?: string;
  observed_fingerprint_sha256?: string;
  error?: string;
}

/** POST /api/v1/agents/{id}/discoveries */
export interface DiscoveryReport {
  scanned_dirs: string[];
  certificates: {
    fingerprint_sha256: string;
    source_path: string;
    certificate_pem: string;
  }[];
  errors?: { path: string; error: string }[];
}
