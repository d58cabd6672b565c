import crypto from 'node:crypto';
import type { DeployRequest, IssueRequest, Json, NotifyRequest, Plugin, PluginKind, ProtocolHttpRequest } from '../index.js';
import { PluginCallFailure } from './errors.js';
import { BAD_CSR_PEM, certificateMatchesCsr, TAMPERED_CSR_PEM, TEST_CERT_PEM, TEST_CSR_PEM, TEST_CSR_SUBJECT } from './fixtures.js';
import { targetChecks, type TargetConformanceOptions } from './target-conformance.js';
import { createTestHost, type TestHost, type TestHostOptions } from './test-host.js';

/** Optional methods whose presence is part of a plugin's declared surface, per kind. */
export const OPTIONAL_METHODS: Record<'issuer' | 'target' | 'notifier' | 'discovery' | 'protocol', readonly string[]> = {
  protocol: [],
  issuer: ['renew', 'revoke', 'getCaChain'],
  target: ['validate', 'verify', 'rollback'],
  notifier: [],
  discovery: [],
};

/** Methods whose presence must match a manifest feature of the same name. */
const FEATURE_METHODS: Partial<Record<PluginKind, readonly string[]>> = { issuer: ['renew', 'revoke'] };

export type ConformanceKind = keyof typeof OPTIONAL_METHODS;

export interface ConformanceOptions<P extends Plugin = Plugin> extends TestHostOptions<P> {
  /** Optional methods the plugin deliberately does not implement (e.g. ['revoke']); the rest must exist. */
  unsupported?: string[];
  /** The manifest (kind and features) to hold the plugin to; targets: its configSchema marks which config commands take plugin arguments. */
  manifest?: { kind: string; features?: string[]; configSchema?: unknown };
  /** The issue request; the kit's known-good CSR by default. */
  issueRequest?: Partial<IssueRequest>;
  /** Targets: the first certificate to deploy (TARGET_FIRST_CERT_PEM with its key at /etc/ssl/certctl/conformance.key by default). */
  deployRequest?: DeployRequest;
  /** Targets: which config fields name files and commands, when they cannot be inferred. */
  target?: TargetConformanceOptions;
  notifyRequest?: NotifyRequest;
  /**
   * Protocols: the mount to send requests to, and paths below it where a POST of
   * garbage must be refused with a 4xx (never thrown).
   */
  protocol?: { mount: string; malformedPaths?: string[] };
}

export interface ConformanceCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface ConformanceReport {
  kind: ConformanceKind;
  pluginId: string;
  checks: ConformanceCheck[];
  passed: number;
  failed: number;
}

/** Thrown by runConformance when any check failed; `report` has every check. */
export class ConformanceError extends Error {
  constructor(readonly report: ConformanceReport) {
    super(`${report.pluginId}: ${report.failed} of ${report.checks.length} conformance checks failed:\n${report.checks.filter((c) => !c.ok).map((c) => `  - ${c.name}: ${c.detail ?? 'failed'}`).join('\n')}`);
    this.name = 'ConformanceError';
  }
}

export class Checks {
  readonly list: ConformanceCheck[] = [];
  pass(name: string, detail?: string) { this.list.push({ name, ok: true, ...(detail ? { detail } : {}) }); }
  fail(name: string, detail: string) { this.list.push({ name, ok: false, detail }); }
  expect(name: string, problem: string | null) { if (problem) this.fail(name, problem); else this.pass(name); }
  /** Runs one host call; a failure becomes a failed check and `undefined`. */
  async call(name: string, host: TestHost, method: string, request: Json): Promise<Record<string, Json> | undefined> {
    try {
      return (await host.call(method, request)) as Record<string, Json>;
    } catch (err) {
      const code = err instanceof PluginCallFailure ? ` [${err.code}]` : '';
      this.fail(name, `${method} failed${code}: ${(err as Error).message}`);
      return undefined;
    }
  }
}

const certProblem = (pem: unknown, what: string): string | null => {
  if (typeof pem !== 'string') return `${what} is not a string`;
  try {
    new crypto.X509Certificate(pem);
    return null;
  } catch (err) {
    return `${what} is not a parseable X.509 certificate: ${(err as Error).message}`;
  }
};

function surfaceChecks(checks: Checks, kind: ConformanceKind, plugin: Plugin, opts: ConformanceOptions): void {
  const p = plugin as unknown as Record<string, unknown>;
  checks.expect(`exports ${kind === 'issuer' ? 'an' : 'a'} ${kind} plugin`, p.kind === kind ? null : `plugin.kind is ${JSON.stringify(p.kind)}, expected "${kind}"`);
  const unsupported = opts.unsupported ?? [];
  const optional = OPTIONAL_METHODS[kind];
  const unknown = unsupported.filter((m) => !optional.includes(m));
  checks.expect('declares only known optional methods as unsupported', unknown.length ? `unknown methods in unsupported: ${unknown.join(', ')} (${kind} optional methods: ${optional.join(', ') || 'none'})` : null);
  for (const m of optional) {
    const present = typeof p[m] === 'function';
    const declared = !unsupported.includes(m);
    checks.expect(`${m}: ${declared ? 'implemented' : 'declared unsupported and absent'}`, present === declared ? null : present ? `${m} exists but is declared unsupported` : `${m} is missing; implement it or list it in unsupported`);
  }
  if (opts.manifest) {
    checks.expect('manifest kind matches the plugin', opts.manifest.kind === kind ? null : `manifest kind is ${opts.manifest.kind}`);
    for (const m of FEATURE_METHODS[kind] ?? []) {
      const has = typeof p[m] === 'function';
      const listed = (opts.manifest.features ?? []).includes(m);
      checks.expect(`manifest feature "${m}" matches the ${m} method`, has === listed ? null : has ? `${m} is implemented but the manifest does not list the "${m}" feature (the host will not call it)` : `the manifest lists "${m}" but the plugin has no ${m} method`);
    }
  }
}

async function issuerChecks(checks: Checks, host: TestHost, plugin: Plugin, opts: ConformanceOptions): Promise<void> {
  const p = plugin as unknown as Record<string, unknown>;
  const request: IssueRequest = {
    certificateId: 'mc-conformance',
    csrPem: TEST_CSR_PEM,
    commonName: TEST_CSR_SUBJECT.commonName,
    sans: TEST_CSR_SUBJECT.sans,
    profile: { id: null, maxTtlSeconds: null, ekus: ['serverAuth'] },
    ...opts.issueRequest,
  };
  const issued = await checks.call('issue: a valid CSR', host, 'issue', request as unknown as Json);
  let certificatePem: string | null = null;
  if (issued) {
    if (issued.status === 'issued') {
      const problem = certProblem(issued.certificatePem, 'certificatePem')
        ?? (issued.chainPem as Json[]).map((c, i) => certProblem(c, `chainPem[${i}]`)).find(Boolean)
        ?? (certificateMatchesCsr(issued.certificatePem as string, request.csrPem) ? null : "the certificate does not carry the CSR's public key");
      checks.expect('issue: a valid CSR is issued with a certificate for its key', problem);
      if (!problem) certificatePem = issued.certificatePem as string;
    } else if (issued.status === 'pending') {
      checks.pass('issue: a valid CSR is accepted (pending)', `order ${String(issued.orderId)}`);
      if (typeof p.checkOrder === 'function') await checks.call('checkOrder: follows up a pending order', host, 'checkOrder', { orderId: issued.orderId, certificateId: request.certificateId });
    } else {
      checks.fail('issue: a valid CSR is issued', `it was ${String(issued.status)}: ${String(issued.reason)}`);
    }
  }

  for (const [what, csrPem] of [['a damaged CSR', BAD_CSR_PEM], ['a CSR whose signature does not verify', TAMPERED_CSR_PEM]] as const) {
    try {
      const r = (await host.call('issue', { ...request, certificateId: 'mc-conformance-bad', csrPem } as unknown as Json)) as Record<string, Json>;
      checks.expect(`issue: ${what} is failed or denied, not thrown`, r.status === 'failed' || r.status === 'denied' ? null : `it was ${String(r.status)}`);
    } catch (err) {
      checks.fail(`issue: ${what} is failed or denied, not thrown`, `issue threw${err instanceof PluginCallFailure ? ` [${err.code}]` : ''}: ${(err as Error).message}`);
    }
  }

  if (typeof p.getCaChain === 'function') {
    const chain = await checks.call('getCaChain', host, 'getCaChain', {});
    if (chain) {
      const list = chain.chainPem as string[];
      let problem = list.map((c, i) => certProblem(c, `chainPem[${i}]`)).find(Boolean) ?? (list.length ? null : 'the chain is empty');
      if (!problem && certificatePem) {
        const cert = new crypto.X509Certificate(certificatePem);
        const issuer = new crypto.X509Certificate(list[0]);
        if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) problem = 'the issued certificate does not verify against the first certificate of getCaChain()';
      }
      checks.expect('getCaChain: returns the CA chain the issued certificate verifies against', problem);
    }
  }
  if (typeof p.renew === 'function') {
    const serial = certificatePem ? new crypto.X509Certificate(certificatePem).serialNumber : undefined;
    const renewed = await checks.call('renew', host, 'renew', { ...request, ...(serial ? { previousSerialNumber: serial } : {}) } as unknown as Json);
    if (renewed) checks.expect('renew: a valid CSR is issued or pending', renewed.status === 'issued' || renewed.status === 'pending' ? null : `it was ${String(renewed.status)}: ${String(renewed.reason)}`);
  }
  if (typeof p.revoke === 'function') {
    const serial = certificatePem ? new crypto.X509Certificate(certificatePem).serialNumber : '01';
    const revoked = await checks.call('revoke', host, 'revoke', { serialNumber: serial, ...(certificatePem ? { certificatePem } : {}), reason: 'superseded' });
    if (revoked) checks.pass('revoke: answers revoked or failed');
  }
}

async function notifierChecks(checks: Checks, host: TestHost, opts: ConformanceOptions): Promise<void> {
  const request: NotifyRequest = opts.notifyRequest ?? {
    notificationId: 'notif-conformance', type: 'ExpirationWarning', severity: 'warning', subject: 'Certificate expires soon',
    message: 'conformance.certctl.test expires in 7 days', recipients: ['pki-team@example.test'],
    certificate: { id: 'mc-conformance', commonName: 'conformance.certctl.test', expiresAt: '2030-01-01T00:00:00Z', status: 'Expiring' },
  };
  const r = await checks.call('notify: answers with a contract result', host, 'notify', request as unknown as Json);
  if (r) checks.pass('notify: answers with a contract result', String(r.status));
}

/** A request as the kernel would forward it. */
export function protocolRequest(mount: string, method: string, path: string, body = Buffer.alloc(0), headers: Record<string, string> = {}): ProtocolHttpRequest {
  return { method, mount, path, query: {}, headers, body: body.toString('base64'), remoteAddress: '127.0.0.1', clientCertificatePem: null, baseUrl: 'https://certctl.test' };
}

async function protocolChecks(checks: Checks, host: TestHost, opts: ConformanceOptions): Promise<void> {
  const mount = opts.protocol?.mount;
  if (!mount) {
    checks.fail('protocol: conformance options name a mount', 'pass `protocol: { mount }`');
    return;
  }
  const is4xx = (r: Record<string, Json> | undefined) => (r && typeof r.status === 'number' && r.status >= 400 && r.status < 500 ? null : `answered ${JSON.stringify(r?.status)}, expected a 4xx`);
  const unknown = await checks.call('handle: an unknown path is answered, not thrown', host, 'handle', protocolRequest(mount, 'GET', '/certctl-conformance-no-such-path') as unknown as Json);
  if (unknown) checks.expect('handle: an unknown path gets a 4xx', is4xx(unknown));
  const garbage = Buffer.from([0x30, 0x82, 0xff, 0xff, 0x00, 0x01, 0x02]);
  for (const path of opts.protocol?.malformedPaths ?? []) {
    for (const type of ['application/pkcs10', 'application/octet-stream', 'text/plain']) {
      const r = await checks.call(`handle: garbage POSTed to ${path} (${type}) is answered`, host, 'handle', protocolRequest(mount, 'POST', path, garbage, { 'content-type': type }) as unknown as Json);
      if (r) checks.expect(`handle: garbage POSTed to ${path} (${type}) gets a 4xx`, is4xx(r));
    }
  }
}

/**
 * The shared conformance suite for a plugin kind, runner-agnostic: it uses no
 * test framework, returns a report when every check passed and throws a
 * ConformanceError (with the report) otherwise. The plugin runs in a test host
 * (createTestHost) built from the same options, so give it the config, secrets,
 * grants and fake network it needs to work.
 *
 * Issuers: issue() issues (or accepts) the kit's known-good CSR with a
 * certificate for its key; a damaged CSR and one with a bad signature come back
 * failed or denied rather than thrown; getCaChain/renew/revoke exist exactly when
 * not declared unsupported and answer in shape. Targets (target-conformance.ts):
 * a first deploy writes the certificate and leaves the agent's key alone, the same
 * deploy again is changed:false and runs no command, a new certificate replaces
 * the files and rollback restores them, a failing validate command rolls back,
 * and paths with "..", relative paths and shell strings in commands are refused
 * before anything is written or run. Notifiers: notify answers in shape. Every
 * result must be plain JSON of the contract's shape.
 */
export async function runConformance<P extends Plugin>(kind: ConformanceKind, opts: ConformanceOptions<P>): Promise<ConformanceReport> {
  const checks = new Checks();
  const host = createTestHost(opts);
  surfaceChecks(checks, kind, opts.plugin, opts as ConformanceOptions);
  if ((opts.plugin as { kind?: unknown }).kind === kind) {
    if (kind === 'issuer') await issuerChecks(checks, host, opts.plugin, opts as ConformanceOptions);
    if (kind === 'target') await targetChecks(checks, opts.plugin, opts as ConformanceOptions);
    if (kind === 'notifier') await notifierChecks(checks, host, opts as ConformanceOptions);
    if (kind === 'protocol') await protocolChecks(checks, host, opts as ConformanceOptions);
    if (kind === 'discovery') {
      const r = await checks.call('discover: answers with a contract result', host, 'discover', {});
      if (r) checks.pass('discover: answers with a contract result');
    }
  }
  const failed = checks.list.filter((c) => !c.ok).length;
  const report: ConformanceReport = { kind, pluginId: opts.pluginId ?? 'test-plugin', checks: checks.list, passed: checks.list.length - failed, failed };
  if (failed) throw new ConformanceError(report);
  return report;
}
