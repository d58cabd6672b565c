/**
 * The plugin contract: what each kind of plugin implements and the one host
 * surface (PluginContext) it may use. Every method takes one request object and
 * returns one result object; outcomes are states (issued / pending / failed /
 * denied), not bare throws, so the host can tell "try later" from "never".
 *
 * Only plain JSON crosses between host and plugin: a plugin may run in a worker
 * thread or in a V8 isolate in another process, and must not be able to tell.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface PluginLogger {
  debug(message: string, fields?: Record<string, Json>): void;
  info(message: string, fields?: Record<string, Json>): void;
  warn(message: string, fields?: Record<string, Json>): void;
  error(message: string, fields?: Record<string, Json>): void;
}

export interface HttpRequest {
  url: string;
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  /** UTF-8 text, or base64 when bodyEncoding is 'base64'. */
  body?: string;
  bodyEncoding?: 'utf8' | 'base64';
  /** Capped by the host's own limit. */
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  bodyEncoding: 'utf8' | 'base64';
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Key types the kernel can make a CA key of. */
export type CaKeyAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-2048' | 'RSA-3072' | 'RSA-4096';

/**
 * Which CA the instance signs with. `generate`: a self-signed root the kernel makes on
 * first use and keeps (key encrypted at rest). `configured`: the operator's sub-CA from
 * CERTCTL_CA_CERT_PATH / CERTCTL_CA_KEY_PATH (refused unless it is a CA with keyCertSign).
 * Idempotent: once the instance has a CA, ensure returns it unchanged.
 */
export type CaEnsureRequest =
  | { source: 'generate'; subject: string; keyAlgorithm: CaKeyAlgorithm; validityDays: number; pathLength?: number }
  | { source: 'configured' };

export interface CaInfo {
  caId: string;
  source: 'generated' | 'configured';
  certificatePem: string;
  /** Issuing CA first, up to (and including) the root. */
  chainPem: string[];
  notBefore: string;
  notAfter: string;
}

/** What to sign. The kernel chooses the serial and adds AKI/SKI (and CDP/AIA when published). */
export interface CaSignRequest {
  csrPem: string;
  notAfter: string;
  notBefore?: string;
  /** Overrides the CSR's subject (an RFC 4514 string such as `CN=a.example, O=Acme`). */
  subject?: string;
  /** Overrides the CSR's SANs (DNS names, IPs, emails, URIs). */
  sans?: string[];
  /** Names (serverAuth, clientAuth, codeSigning, emailProtection, timeStamping, ocspSigning) or OIDs. */
  extendedKeyUsage?: string[];
  /** Defaults adapt to the key and EKUs (digitalSignature, plus keyEncipherment for RSA TLS keys). */
  keyUsage?: string[];
}

export interface CaSignResult {
  certificatePem: string;
  chainPem: string[];
  serialNumberHex: string;
  notBefore: string;
  notAfter: string;
  fingerprintSha256: string;
}

/**
 * The host surface. Members the operator did not grant are absent or throw a
 * capability error; the plugin cannot reach anything else (no env, no fs, no net).
 */
export interface PluginContext {
  pluginId: string;
  /** The issuer/target/notifier row this call is for, when there is one. */
  instanceId: string | null;
  /** The instance's validated config without its secrets; frozen. */
  config: Readonly<Record<string, Json>>;
  /** The instance's own secrets (schema fields marked writeOnly / x-secret), by dot path. */
  secrets: {
    get(path: string): Promise<string | undefined>;
    /**
     * A key for `label` (1-64 printable ASCII characters): base64url of 32 bytes the
     * host derives from its own master key, bound to this plugin, this call's
     * instance and the label. Never stored; the same on every kernel sharing the
     * master key; no other plugin or instance can get it. For MACs over tokens the
     * plugin hands out (stateless nonces), not for data that must outlive a key change.
     */
    deriveKey(label: string): Promise<string>;
  };
  log: PluginLogger;
  /** Capability `http`: only the hosts the manifest declared and the operator granted. */
  http: { fetch(request: HttpRequest): Promise<HttpResponse> };
  /** Capability `kv`: a store private to this plugin. Values are JSON. */
  kv: {
    get(key: string): Promise<Json | undefined>;
    set(key: string, value: Json, options?: { ttlSeconds?: number }): Promise<void>;
    delete(key: string): Promise<void>;
    list(prefix?: string): Promise<string[]>;
    /**
     * Removes the key and returns its value, atomically: of callers racing for one
     * key (on any kernel) exactly one gets the value, the others undefined. One-use
     * tokens (nonces) are taken, not read then deleted.
     */
    take(key: string): Promise<Json | undefined>;
    /**
     * Adds `by` (default 1) to an integer counter and returns the new value,
     * atomically across kernels. An absent or expired key (or one holding a
     * non-number) starts from 0 with `ttlSeconds`; later increments keep the
     * expiry, so a counter with a TTL counts a fixed window (rate limits).
     */
    increment(key: string, options?: { by?: number; ttlSeconds?: number }): Promise<number>;
  };
  /** Capability `events`. */
  events: { emit(type: string, data: Record<string, Json>): Promise<void> };
  /** Epoch milliseconds at the host; the call's deadline too. */
  clock: { now(): number; deadline(): number };
  /**
   * Capability `ca`: the instance's own CA, kept by the kernel. Signing runs in the
   * kernel's crypto pool; the CA private key never enters the plugin.
   */
  ca: {
    ensure(request: CaEnsureRequest): Promise<CaInfo>;
    sign(request: CaSignRequest): Promise<CaSignResult>;
  };
  /**
   * Agent side, capability `fs`: the granted paths only (the manifest's, plus the
   * instance config fields marked `x-certctl-path`). A missing file rejects with an
   * error whose `code` is 'ENOENT'.
   */
  fs: {
    read(path: string): Promise<string>;
    /**
     * Atomic (temp file + rename). An existing file keeps its owner, group and mode;
     * `mode` applies to a new file (default 0o600).
     */
    write(path: string, data: string, options?: { mode?: number }): Promise<void>;
    /** Removes a file; a missing file is not an error. */
    remove(path: string): Promise<void>;
  };
  /**
   * Agent side, capability `exec`: the granted commands only (the manifest's, plus the
   * first element of instance config fields marked `x-certctl-command`), arguments
   * always as an array, never through a shell.
   */
  exec: { run(command: string, args: string[], options?: { timeoutMs?: number; input?: string }): Promise<ExecResult> };
  /**
   * Capability `issuance`, protocol plugins only: enrolment through the kernel's
   * issuance service (profiles, policies, approvals, audit). A protocol never
   * calls an issuer plugin itself.
   */
  issuance: {
    enroll(request: EnrollRequest): Promise<EnrollResult>;
    revoke(request: EnrollRevokeRequest): Promise<EnrollRevokeResult>;
    caChain(request: { issuerId: string }): Promise<{ chainPem: string[] }>;
    /**
     * ACME http-01 (RFC 8555 8.3) done by the kernel: GET
     * http://{host}:{port}/.well-known/acme-challenge/{token} (port 80, or 1024-65535
     * as the operator configured), no redirects, 10 s, and compare the body with
     * keyAuthorization. Cloud metadata and unspecified addresses are never contacted.
     * `dnsResolvers` (here and below): `ip[:port]` DNS servers for the lookups instead of the system's;
     * `caaIdentities`: after a successful validation, CAA (RFC 8659) must allow one of these CA domains.
     */
    checkHttp01(request: { host: string; port?: number; token: string; keyAuthorization: string; dnsResolvers?: string[]; caaIdentities?: string[] }): Promise<AcmeValidationResult>;
    /** ACME dns-01 (RFC 8555 8.4): TXT _acme-challenge.{name} must hold base64url(SHA-256(keyAuthorization)); `name` without "*." (`wildcard` for CAA issuewild). */
    checkDns01(request: { name: string; wildcard?: boolean; keyAuthorization: string; dnsResolvers?: string[]; caaIdentities?: string[] }): Promise<AcmeValidationResult>;
    /**
     * ACME tls-alpn-01 (RFC 8737/8738): TLS to {host}:{port} (443, or 1024-65535) with ALPN
     * acme-tls/1; the certificate must name only {host} and carry SHA-256(keyAuthorization)
     * in its critical acmeIdentifier extension.
     */
    checkTlsAlpn01(request: { host: string; port?: number; keyAuthorization: string; dnsResolvers?: string[]; caaIdentities?: string[] }): Promise<AcmeValidationResult>;
    /** The kernel's view of one version (serial, hex) of a certificate this plugin enrolled; null for any other certificate. */
    certificateStatus(request: { certificateId: string; serialNumber: string }): Promise<EnrolledCertificateStatus | null>;
    /**
     * The issuer's registration-authority (RA) certificate (SCEP, RFC 8894): an RSA key
     * the kernel keeps per issuer and calling plugin, certified by the issuer's kernel-kept CA (keyUsage
     * digitalSignature + keyEncipherment, EKU id-kp-cmcRA), made on first use and
     * replaced before it expires or when the CA changes. The key never leaves the kernel.
     */
    raCertificate(request: { issuerId: string }): Promise<RaCertificate>;
    /** Opens a CMS EnvelopedData (DER ContentInfo, base64) addressed to one of the issuer's unexpired RA certificates. */
    raDecrypt(request: { issuerId: string; envelopedDataBase64: string }): Promise<RaDecryptResult>;
    /**
     * A CMS SignedData (DER ContentInfo) signed by the issuer's RA with SHA-256/RSA over
     * `contentBase64` (absent: no encapsulated content). The kernel adds contentType,
     * signingTime and messageDigest; `signedAttributes` adds SCEP's (DER values). Only a
     * SCEP CertRep is signed: SCEP attributes each once, messageType "3", content absent
     * or a CMS EnvelopedData; anything else is refused.
     */
    raSign(request: { issuerId: string; contentBase64?: string; signedAttributes?: Array<{ type: string; valuesBase64: string[] }> }): Promise<RaSignResult>;
  };
}

/**
 * The methods of ctx.issuance. Each crosses to the kernel as broker op
 * `issuance.<method>` with its request as JSON; the runners' context shims, the
 * kernel's op checks and the test host build theirs from this one list.
 */
export const ISSUANCE_METHODS = ['enroll', 'revoke', 'caChain', 'checkHttp01', 'checkDns01', 'checkTlsAlpn01', 'certificateStatus', 'raCertificate', 'raDecrypt', 'raSign'] as const satisfies readonly (keyof PluginContext['issuance'])[];
export type IssuanceMethod = (typeof ISSUANCE_METHODS)[number];
/** Compiles only while ISSUANCE_METHODS names every method of ctx.issuance. */
const issuanceMethodsComplete: [Exclude<keyof PluginContext['issuance'], IssuanceMethod>] extends [never] ? true : never = true;
void issuanceMethodsComplete;

export interface RaCertificate {
  certificatePem: string;
  /** The issuer's CA chain, issuing CA first. */
  chainPem: string[];
}

/**
 * CMS content encryption that SCEP clients use, by node cipher name: its OID and
 * key and IV sizes. One table for the kernel's RA (opening a request) and the
 * SCEP plugin (encrypting the reply the same way).
 */
export const CMS_CONTENT_CIPHERS = {
  'des-cbc': { oid: '1.3.14.3.2.7', keyLength: 8, ivLength: 8 },
  'des-ede3-cbc': { oid: '1.2.840.113549.3.7', keyLength: 24, ivLength: 8 },
  'aes-128-cbc': { oid: '2.16.840.1.101.3.4.1.2', keyLength: 16, ivLength: 16 },
  'aes-192-cbc': { oid: '2.16.840.1.101.3.4.1.22', keyLength: 24, ivLength: 16 },
  'aes-256-cbc': { oid: '2.16.840.1.101.3.4.1.42', keyLength: 32, ivLength: 16 },
} as const satisfies Record<string, { oid: string; keyLength: number; ivLength: number }>;

export type CmsContentCipher = keyof typeof CMS_CONTENT_CIPHERS;

/**
 * `contentCipher`: the content encryption the client chose (node cipher names); the
 * reply is encrypted the same way, so single DES only ever answers a client that sent it.
 * `decrypt_failed` is the one answer for every failure after the recipient was found (no padding oracle).
 */
export type RaDecryptResult =
  | { ok: true; contentBase64: string; contentCipher: CmsContentCipher }
  | { ok: false; code: 'bad_message' | 'not_for_ra' | 'bad_alg' | 'decrypt_failed'; reason: string };

export interface RaSignResult {
  signedDataBase64: string;
}

// ---- issuance (capability of protocol plugins) --------------------------

/** What the kernel's ACME challenge validation found; `error` is the RFC 8555 problem type of a failure. */
export type AcmeValidationResult = { ok: true } | { ok: false; reason: string; error?: 'connection' | 'dns' | 'incorrectResponse' | 'tls' | 'caa' };

/** Who asked, as the protocol authenticated them; recorded as the audit actor. */
export interface EnrollRequester {
  /** e.g. 'est-basic', 'est-client-cert', 'acme-account', 'scep-challenge'. */
  kind: string;
  /** The user name, account URL, certificate subject... (never a secret). */
  id: string;
}

export interface EnrollRequest {
  /** Profile the enrolment is checked against; null: none (only the issuer's own limits). */
  profileId: string | null;
  issuerId: string;
  csrPem: string;
  requester: EnrollRequester;
  /**
   * Re-enrolment (renewal) of a certificate this plugin enrolled before; without
   * it a new managed certificate is created. Also the way to collect the result
   * of an enrolment that was `pending`.
   */
  certificateId?: string;
  /** Requested end of validity (ISO 8601); the profile and issuer may shorten it. */
  notAfter?: string;
}

export type EnrollResult =
  | { status: 'issued'; certificateId: string; certificatePem: string; chainPem: string[]; serialNumber: string; notAfter: string }
  | { status: 'pending'; certificateId: string; retryAfterSeconds: number; approvalId?: string }
  | { status: 'denied'; reason: string }
  | { status: 'failed'; reason: string; retryable: boolean };

/** ctx.issuance.certificateStatus: what renewal information (ACME ARI, RFC 9773) is based on. */
export interface EnrolledCertificateStatus {
  /** The managed certificate's status (Active, Expiring, Expired, RenewalInProgress, Revoked...). */
  status: string;
  /** Its current version's serial (lower-case hex), null before the first issuance. */
  serialNumber: string | null;
  /** The asked-about version (or the whole certificate) is revoked. */
  revoked: boolean;
  /** Replace it at once: revoked, or an operator asked for a renewal after this version was issued. */
  renewNow: boolean;
}

export interface EnrollRevokeRequest {
  /** A certificate this plugin enrolled. */
  certificateId: string;
  /** RFC 5280 reason name (keyCompromise, superseded, ...); default unspecified. */
  reason?: string;
}

export type EnrollRevokeResult = { status: 'revoked' } | { status: 'failed'; reason: string };

// ---- issuer -------------------------------------------------------------

export interface IssueRequest {
  /** The certificate's id in certctl (stable across renewals). */
  certificateId: string;
  csrPem: string;
  commonName: string;
  sans: string[];
  /** Requested validity; the issuer may shorten it. ISO 8601. */
  notAfter?: string;
  profile: { id: string | null; maxTtlSeconds: number | null; ekus: string[] };
  /** Set on renewal: the serial being replaced. */
  previousSerialNumber?: string;
}

export type IssueResult =
  | { status: 'issued'; certificatePem: string; chainPem: string[] }
  | { status: 'pending'; orderId: string; retryAfterSeconds: number }
  | { status: 'failed'; reason: string; retryable: boolean }
  | { status: 'denied'; reason: string };

/**
 * What `issue` and `renew` of an issuer with the `ca` capability may answer
 * instead of calling `ctx.ca.sign` and returning its certificate: the kernel
 * signs the order with the instance's CA exactly as `ctx.ca.sign` would (same
 * checks, same refusals) and the caller gets `issued`, or `denied`/`failed`
 * as caFailureResult() maps a refusal. It saves a round trip between the
 * plugin and the kernel per certificate. Call `ctx.ca.ensure` first, as for
 * `ctx.ca.sign`.
 */
export interface SignOrder {
  status: 'sign';
  sign: CaSignRequest;
}

export interface RevokeRequest {
  serialNumber: string;
  certificatePem?: string;
  /** RFC 5280 reason name, e.g. keyCompromise. */
  reason: string;
}

export type RevokeResult = { status: 'revoked' } | { status: 'failed'; reason: string; retryable: boolean };

export interface RenewalInfo {
  suggestedWindow: { start: string; end: string };
  retryAfterSeconds?: number;
  explanationUrl?: string;
}

export interface IssuerPlugin {
  kind: 'issuer';
  issue(request: IssueRequest, ctx: PluginContext): Promise<IssueResult | SignOrder>;
  /** Follows up an earlier `pending`. */
  checkOrder?(request: { orderId: string; certificateId: string }, ctx: PluginContext): Promise<IssueResult>;
  renew?(request: IssueRequest, ctx: PluginContext): Promise<IssueResult | SignOrder>;
  revoke?(request: RevokeRequest, ctx: PluginContext): Promise<RevokeResult>;
  getCaChain?(request: Record<string, never>, ctx: PluginContext): Promise<{ chainPem: string[] }>;
  renewalInfo?(request: { certificatePem: string }, ctx: PluginContext): Promise<RenewalInfo | null>;
  /** "Test connection" from the dashboard: reach the CA with this config, change nothing. */
  validateConfig?(request: Record<string, never>, ctx: PluginContext): Promise<{ ok: true } | { ok: false; reason: string }>;
}

// ---- target -------------------------------------------------------------

export interface DeployRequest {
  certificateId: string;
  certificatePem: string;
  chainPem: string[];
  /** Path of the private key on the agent; the key itself never leaves the agent. */
  keyPath: string;
  fingerprintSha256: string;
}

export type DeployResult =
  | { status: 'deployed'; changed: boolean; snapshotId?: string }
  | { status: 'failed'; reason: string; rolledBack: boolean };

export interface TargetPlugin {
  kind: 'target';
  deploy(request: DeployRequest, ctx: PluginContext): Promise<DeployResult>;
  validate?(request: Record<string, never>, ctx: PluginContext): Promise<{ ok: true } | { ok: false; reason: string }>;
  verify?(request: { fingerprintSha256: string }, ctx: PluginContext): Promise<{ status: 'success' | 'failed' | 'skipped'; observedFingerprintSha256?: string; reason?: string }>;
  rollback?(request: { snapshotId: string }, ctx: PluginContext): Promise<{ ok: boolean; reason?: string }>;
  validateConfig?(request: Record<string, never>, ctx: PluginContext): Promise<{ ok: true } | { ok: false; reason: string }>;
}

// ---- notifier -----------------------------------------------------------

export const NOTIFICATION_TYPES = ['ExpirationWarning', 'RenewalSuccess', 'RenewalFailure', 'DeploymentSuccess', 'DeploymentFailure', 'PolicyViolation', 'Revocation'] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

export interface NotifyRequest {
  notificationId: string;
  /** A lifecycle event, or 'Digest': the kernel's scheduled summary e-mail, sent through e-mail notifiers only. */
  type: NotificationType | 'Digest';
  severity: 'info' | 'warning' | 'critical';
  subject: string;
  message: string;
  recipients: string[];
  certificate?: { id: string; commonName: string; expiresAt: string | null; status: string };
  /** A complete HTML body (the digest): channels that render HTML send it as is; `message` stays the plain-text form. */
  html?: string;
}

export type NotifyResult = { status: 'sent' } | { status: 'failed'; reason: string; retryable: boolean };

export interface NotifierPlugin {
  kind: 'notifier';
  notify(request: NotifyRequest, ctx: PluginContext): Promise<NotifyResult>;
  validateConfig?(request: Record<string, never>, ctx: PluginContext): Promise<{ ok: true } | { ok: false; reason: string }>;
}

// ---- discovery ----------------------------------------------------------

export interface DiscoveredCertificate {
  certificatePem: string;
  source: string;
}

export interface DiscoveryPlugin {
  kind: 'discovery';
  discover(request: { cursor?: string }, ctx: PluginContext): Promise<{ certificates: DiscoveredCertificate[]; nextCursor?: string }>;
}

// ---- protocol -----------------------------------------------------------

/**
 * One HTTP request below one of the plugin's mounts (manifest `protocol.mounts`),
 * as the kernel forwards it. The protocol authenticates the caller itself.
 */
export interface ProtocolHttpRequest {
  method: string;
  /** The mount that matched, e.g. `/.well-known/est`. */
  mount: string;
  /** The rest of the path below the mount: '' or starting with '/'. */
  path: string;
  /** Decoded query parameters (the last value of a repeated one). */
  query: Record<string, string>;
  /** Header names lower-cased; repeated headers joined with ', '. */
  headers: Record<string, string>;
  /** The body, base64 (possibly empty). */
  body: string;
  remoteAddress: string;
  /** The TLS client certificate the caller presented (PEM), not validated by the kernel; null when none. */
  clientCertificatePem: string | null;
  /** Public base URL of the kernel (scheme://host[:port]), for absolute URLs in answers. */
  baseUrl: string;
}

export interface ProtocolHttpResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Default 'utf8'. */
  bodyEncoding?: 'utf8' | 'base64';
}

export interface ProtocolPlugin {
  kind: 'protocol';
  handle(request: ProtocolHttpRequest, ctx: PluginContext): Promise<ProtocolHttpResponse>;
}

export type Plugin = IssuerPlugin | TargetPlugin | NotifierPlugin | DiscoveryPlugin | ProtocolPlugin;
export type PluginOf<K extends Plugin['kind']> = Extract<Plugin, { kind: K }>;

/** The methods a host may call on a plugin of a kind (everything but `kind`). */
export type PluginMethod<P extends Plugin> = Exclude<keyof P, 'kind'> & string;

/**
 * Declares a plugin. The object is returned as is (no registration side effect):
 * the entry module's default export is what the host loads.
 */
export function definePlugin<P extends Plugin>(plugin: P): P {
  if (!plugin || typeof plugin !== 'object') throw new TypeError('definePlugin expects an object');
  for (const [name, value] of Object.entries(plugin)) {
    if (name !== 'kind' && typeof value !== 'function') throw new TypeError(`plugin member "${name}" must be a function`);
  }
  return plugin;
}
