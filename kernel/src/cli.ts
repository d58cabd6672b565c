import { Command } from 'commander';
import { loadConfig } from './config.js';
import { installPluginCommand, type InstallCommandOptions } from './plugins/install/cli-install.js';
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
  const plugins = program.command('plugins').description('Manage plugins on a running control plane');
  plugins
    .command('install')
    .description('Install a third-party plugin from a .tgz, a folder or an npm package name (packed with npm pack, scripts off)')
    .argument('<source>', 'file.tgz, a plugin folder, or an npm package name (name, @scope/name, name@version)')
    .option('--server <url>', 'control plane URL (default: CERTCTL_SERVER_URL)')
    .option('--api-key <key>', 'API key with plugin.manage (default: CERTCTL_API_KEY)')
    .option('--ca-file <path>', "PEM file to trust the server's certificate with (default: CERTCTL_CA_FILE)")
    .option('--grant <mode>', 'all, none, or a comma list of capability names to grant in full (http,kv,events,fs,exec)', 'none')
    .action(async (source: string, opts: InstallCommandOptions) => {
      try {
        await installPluginCommand(source, opts, { out: (line) => process.stdout.write(`${line}\n`), env: process.env });
      } catch (err) {
        process.stderr.write(`certctl: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
  await program.parseAsync(argv);
}
