import { Command } from 'commander';
import { loadConfig } from './config.js';
import { StartupError } from './errors.js';
import { startKernel } from './kernel.js';
import { VERSION } from './version.js';

async function serve(): Promise<void> {
  let kernel: Awaited<ReturnType<typeof startKernel>>;
  try {
    kernel = await startKernel(loadConfig(), { printInitialKey: true });
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`certctl: cannot start: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`certctl: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    kernel.close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`certctl: shutdown failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command();
  program.name('certctl').description('Certificate lifecycle control plane').version(VERSION);
  program.command('serve').description('Run the control plane (HTTPS API, scheduler, plugins)').action(serve);
  await program.parseAsync(argv);
}
