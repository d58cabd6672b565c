import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { AuditLog } from './audit/audit-log.js';
import { IdentityService } from './auth/identity-service.js';
import type { KernelConfig } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { migrate } from './db/migrate.js';
import { buildApp } from './http/app.js';
import type { CompiledRoute, RouteDef } from './http/route.js';
import { JobQueue, type JobHandler } from './jobs/job-queue.js';
import type { JobType } from './jobs/job-states.js';
import type { KernelServices } from './kernel-services.js';
import { kernelRoutes } from './routes-index.js';
import { Scheduler, type LoopDef } from './scheduler/scheduler.js';
import { kernelLoops } from './scheduler/kernel-loops.js';
import { pkiRequestHandler } from './revocation/index.js';
import { ProtocolIssuanceOps, wantsClientCertificates } from './protocols/index.js';
import { subsystemJobHandlers, subsystemLoops } from './subsystems.js';
import { applyEnvBootstrap } from './bootstrap/apply-env.js';
import { CaKeystore } from './ca/ca-keystore.js';
import { CryptoService } from './crypto/crypto-service.js';
import { KernelCapabilityBroker } from './plugins/broker/capability-broker.js';
import { loadPluginCatalog } from './plugins/catalog.js';
import { isolateRunnerFactory } from './plugins/host/isolate-runner-factory.js';
import { PluginHost } from './plugins/host/plugin-host.js';
import { InstalledPluginStore } from './plugins/install/installed-store.js';
import { ConfigCipher } from './secrets/config-cipher.js';
import { loadServerTls } from './tls/server-certificate.js';
import { VERSION } from './version.js';
import { EventBus, LiveSocketServer, type LiveSocketOptions } from './events/index.js';

export interface StartOptions {
  log?: Logger;
  /** Extra job handlers and loops (later subsystems, and test harnesses). */
  jobHandlers?: Partial<Record<JobType, JobHandler>>;
  loops?: LoopDef[];
  /** An already-open database (tests hand in a migrated template copy). Closed with the kernel. */
  database?: Database;
  /** Print the initial admin key banner (the CLI does; tests read the file). */
  printInitialKey?: boolean;
  listen?: boolean;
  /** The built dashboard (default: web/dist beside the kernel). */
  webDir?: string;
  /** Live WebSocket tuning (tests shorten the heartbeat). */
  liveSocket?: Partial<LiveSocketOptions>;
}

export interface Kernel extends KernelServices {
  identity: IdentityService;
  routes: CompiledRoute[];
  server: https.Server | null;
  url: string;
  tlsFingerprint: string;
  /** Live events (audit-fed, fanned out across replicas on PostgreSQL). */
  events: EventBus;
  initialAdminKey?: string;
  close(): Promise<void>;
}

/**
 * Boot order: config and TLS material -> database + migrations -> identity and secrets -> HTTPS ->
 * scheduler. Shutdown reverses it: stop accepting, drain loops and jobs within the
 * bound, flush audit, close the database.
 */
export async function startKernel(config: KernelConfig, opts: StartOptions = {}): Promise<Kernel> {
  const log = opts.log ?? pino({ level: config.logLevel, base: { svc: 'certctl' }, redact: { paths: ['key', '*.key', 'token', '*.token', 'req.headers.authorization', 'password', '*.password'], censor: '[redacted]' } });
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const replicaId = `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;

  // TLS material is configuration: an unusable operator certificate stops the start before anything else opens.
  const tlsId = await loadServerTls({ dataDir: config.dataDir, certPath: config.tlsCertPath, keyPath: config.tlsKeyPath });
  if (tlsId.generated) log.warn({ cert: tlsId.certPath, sha256: tlsId.fingerprintSha256 }, 'generated a self-signed server certificate; set CERTCTL_TLS_CERT_PATH/KEY_PATH for production');

  const db: Database = opts.database ?? await openDatabase({
    databaseUrl: config.databaseUrl,
    pgliteDir: config.databaseUrl ? undefined : path.join(config.dataDir, 'db'),
    poolMax: config.databasePoolMax,
  });
  let closed = false;
  let installedPlugins: InstalledPluginStore | null = null;
  let pluginHost: PluginHost | null = null;
  let cryptoService: CryptoService | null = null;
  let events: EventBus | null = null;
  let liveSocket: LiveSocketServer | null = null;
  try {
    const applied = await migrate(db);
    log.info({ database: db.dialect, applied }, applied.length ? 'migrations applied' : 'schema up to date');

    const audit = new AuditLog(db.knex, log);
    events = new EventBus({ audit, db, replicaId, log: log.child({ mod: 'events' }) });
    await events.start();
    const identity = new IdentityService(db.knex, audit);
    await identity.syncDefaultRoles();
    const { cipher, generatedKeyFile } = await ConfigCipher.open(db.knex, { passphrase: config.configEncryptionKey, dataDir: config.dataDir });
    if (generatedKeyFile) log.warn({ file: generatedKeyFile }, 'no CERTCTL_CONFIG_ENCRYPTION_KEY set: generated one; back it up, and give every replica the same key');
    if (config.authType === 'none') log.warn('AUTHENTICATION IS DISABLED (CERTCTL_AUTH_TYPE=none): every caller is an admin. Use only for local demos.');
    if (config.keygenMode === 'server') log.warn('CERTCTL_KEYGEN_MODE=server: private keys are generated on the control plane. Demo use only.');

    let initialAdminKey: string | undefined;
    if (config.authType === 'api-key' && !config.bootstrapToken) {
      const created = await identity.createFirstAdmin('initial-admin', 'initial');
      if (created) {
        initialAdminKey = created.key;
        const file = path.join(config.dataDir, 'initial-admin-key');
        fs.writeFileSync(file, created.key + '\n', { mode: 0o600 });
        fs.chmodSync(file, 0o600);
        if (opts.printInitialKey) {
          process.stdout.write(`\n  Initial admin API key (shown once, also saved to ${file}):\n\n    ${created.key}\n\n  Use it as: Authorization: Bearer <key>\n\n`);
        }
      }
    }

    // Plugin manifests are data: checked here, before HTTP, and a bad one only disables itself.
    const plugins = loadPluginCatalog({ extraDirs: config.pluginDirs, kernelVersion: VERSION, log: log.child({ mod: 'plugins' }) });
    const disabledPlugins = plugins.list().filter((p) => p.status === 'disabled');
    for (const p of disabledPlugins) log.warn({ plugin: p.id, dir: p.dir, reason: p.reason }, 'plugin disabled');
    log.info({ enabled: plugins.list().length - disabledPlugins.length, disabled: disabledPlugins.length }, 'plugin catalog loaded');
    // Plugins installed through the API join the catalog from installed_plugins, re-read on every replica.
    installedPlugins = new InstalledPluginStore({ knex: db.knex, dataDir: config.dataDir, catalog: plugins, kernelVersion: VERSION, log: log.child({ mod: 'plugins' }) });
    await installedPlugins.start();

    const jobs = new JobQueue(db.knex, audit, log.child({ mod: 'jobs' }), { replicaId, ...config.jobs, approvalTimeoutMs: config.approvalTimeoutMs });
    const scheduler = new Scheduler(db, log.child({ mod: 'scheduler' }), replicaId);
    let draining = false;
    // Plugin runners and the crypto pool start on first use; nothing here loads plugin code.
    cryptoService = new CryptoService({ log: log.child({ mod: 'crypto' }) });
    // ctx.ca of issuer plugins: CA keys stay in the kernel and sign in the crypto pool.
    const caKeystore = new CaKeystore({ knex: db.knex, cipher, audit, crypto: cryptoService, log: log.child({ mod: 'ca' }), configured: { certPath: config.caCertPath, keyPath: config.caKeyPath }, publicBaseUrl: config.publicBaseUrl });
    // ctx.issuance of protocol plugins runs the issuance service, which needs the services built below.
    const broker = new KernelCapabilityBroker({ knex: db.knex, cipher, audit, caKeystore, log: log.child({ mod: 'plugin-broker' }), issuance: new ProtocolIssuanceOps(() => services) });
    pluginHost = new PluginHost({ catalog: plugins, knex: db.knex, cipher, broker, events: broker.events, log: log.child({ mod: 'plugin-host' }), isolateRunnerFactory: isolateRunnerFactory({ log: log.child({ mod: 'plugin-host' }) }) });
    const services: KernelServices = { config, log, db, audit, jobs, scheduler, cipher, plugins, pluginHost, crypto: cryptoService, caKeystore, replicaId, isDraining: () => draining };
    // Notifiers and enrolment endpoints configured by CERTCTL_* variables exist before the first request (bootstrap/).
    await applyEnvBootstrap(services);
    const handlers = { ...subsystemJobHandlers(services), ...(opts.jobHandlers ?? {}) };
    for (const [type, handler] of Object.entries(handlers)) jobs.registerHandler(type as JobType, handler!);

    const routeDefs: RouteDef[] = kernelRoutes(services, identity, () => routeDefs);
    const { app, compiled, stop: stopApp } = buildApp({ config, log, db, audit, routes: routeDefs, webDir: opts.webDir });


    let server: https.Server | null = null;
    let url = config.publicBaseUrl;
    if (opts.listen !== false) {
      // EST client-certificate auth: ask for (never require) a client certificate when a protocol plugin wants it; the plugin judges it.
      const askClientCert = wantsClientCertificates(plugins.list());
      server = https.createServer({ cert: tlsId.cert, key: tlsId.key, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', requestCert: askClientCert, rejectUnauthorized: false }, pkiRequestHandler(services, app.callback()));
      server.keepAliveTimeout = 65_000;
      server.headersTimeout = 66_000;
      server.requestTimeout = 120_000;
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.serverPort, config.serverHost, () => resolve());
      });
      const port = (server.address() as AddressInfo).port;
      url = `https://localhost:${port}`;
      liveSocket = new LiveSocketServer({ bus: events, knex: db.knex, authType: config.authType, log: log.child({ mod: 'ws' }), options: opts.liveSocket });
      liveSocket.attach(server);
      log.info({ url, tls: 'TLSv1.3', database: db.dialect, data_dir: config.dataDir }, 'certctl control plane listening');
    }

    for (const loop of [...kernelLoops(services), ...subsystemLoops(services), ...(opts.loops ?? [])]) scheduler.register(loop);
    if (config.schedulerEnabled) scheduler.start();
    jobs.onWake(() => { if (config.schedulerEnabled && !draining) void scheduler.trigger('job-processor').catch(() => {}); });

    const close = async () => {
      if (closed) return;
      closed = true;
      draining = true;
      log.info('shutting down: draining in-flight work');
      const serverClosed = server ? new Promise<void>((r) => server!.close(() => r())) : Promise.resolve();
      server?.closeIdleConnections();
      await liveSocket?.close();
      const deadline = config.shutdownTimeoutMs;
      const [loopsOk, jobsOk] = await Promise.all([scheduler.stop(deadline), jobs.stop(deadline)]);
      if (!loopsOk || !jobsOk) log.warn('shutdown bound reached; unfinished jobs keep their lease and will be reaped');
      server?.closeAllConnections();
      await serverClosed;
      stopApp();
      installedPlugins?.stop();
      await Promise.all([pluginHost?.close(), cryptoService?.close()]);
      await audit.close();
      await events?.stop();
      await db.close();
      log.info('stopped');
    };

    return { ...services, identity, routes: compiled, server, url, tlsFingerprint: tlsId.fingerprintSha256, initialAdminKey, events, close };
  } catch (err) {
    installedPlugins?.stop();
    await liveSocket?.close().catch(() => {});
    await events?.stop().catch(() => {});
    await Promise.all([pluginHost?.close(), cryptoService?.close()]).catch(() => {});
    if (!closed) await db.close().catch(() => {});
    throw err;
  }
}
