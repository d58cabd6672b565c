import fs from 'node:fs/promises';
import type { Logger } from 'pino';
import { createIsolateRunner, type IsolateRunnerOptions } from '../runners/isolate/index.js';
import { pluginEntryFile } from './plugin-entry-file.js';
import type { IsolateRunnerFactory } from './plugin-host.js';

type IsolateLimits = Omit<IsolateRunnerOptions, 'pluginId' | 'source' | 'filename' | 'kind' | 'grants' | 'broker' | 'log'>;

/**
 * Builds the PluginHost's isolate runners: reads the plugin's bundled isolate
 * entry (checked to lie inside its package) and hands the text to the sandbox;
 * the plugin's files are never imported into the kernel.
 */
export function isolateRunnerFactory(opts: { log: Logger; limits?: IsolateLimits }): IsolateRunnerFactory {
  return async (entry, grants, broker) => {
    const file = pluginEntryFile(entry, 'isolate');
    if ('reason' in file) throw new Error(file.reason);
    const source = await fs.readFile(file.file, 'utf8');
    return createIsolateRunner({
      ...opts.limits,
      pluginId: entry.id,
      source,
      filename: `${entry.id}/${entry.manifest?.entry.isolate ?? 'isolate.js'}`,
      kind: entry.kind,
      grants,
      broker,
      log: opts.log.child({ plugin_id: entry.id, runner: 'isolate' }),
    });
  };
}
