import type { Logger } from 'pino';
import type { AuditLog } from './audit/audit-log.js';
import type { CaKeystore } from './ca/ca-keystore.js';
import type { KernelConfig } from './config.js';
import type { Database } from './db/database.js';
import type { JobQueue } from './jobs/job-queue.js';
import type { CryptoService } from './crypto/crypto-service.js';
import type { PluginCatalog } from './plugins/catalog.js';
import type { PluginHost } from './plugins/host/plugin-host.js';
import type { Scheduler } from './scheduler/scheduler.js';
import type { ConfigCipher } from './secrets/config-cipher.js';

/** The kernel's services, handed to route modules and loops (typed refs, no globals). */
export interface KernelServices {
  config: KernelConfig;
  log: Logger;
  db: Database;
  audit: AuditLog;
  jobs: JobQueue;
  scheduler: Scheduler;
  cipher: ConfigCipher;
  /** Discovered plugins and their checked manifests (built at boot, immutable). */
  plugins: PluginCatalog;
  /** Calls plugin methods in their runners (worker pool or isolate); runners start on first use. */
  pluginHost: PluginHost;
  /** CSR verification and certificate signing on the crypto pool (never loads plugin code). */
  crypto: CryptoService;
  /** The kernel's CA keys (ctx.ca of issuer plugins; CRL and OCSP responder signing). */
  caKeystore: CaKeystore;
  replicaId: string;
  isDraining(): boolean;
}
