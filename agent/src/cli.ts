import { parseArgs } from 'node:util';
import pino from 'pino';
import { AgentDaemon } from './agent-daemon.js';
import { AgentConfigError, FLAG_ENV, loadAgentConfig } from './config.js';
import { AGENT_VERSION } from './host-facts.js';

const HELP = `Usage: certctl agent [options]

Runs the certctl agent: registers with the control plane, heartbeats, polls for
work, makes keys and CSRs locally, deploys through target plugins, verifies the
live endpoint and scans for existing certificates.

Options (each also read from the environment variable shown):
${Object.entries(FLAG_ENV).map(([flag, env]) => `  --${flag.padEnd(22)} ${env}`).join('\n')}
  --help                   this text
  --version                the agent's version

Also from the environment: CERTCTL_AGENT_BOOTSTRAP_TOKEN (registration),
CERTCTL_VERIFY_TIMEOUT, CERTCTL_VERIFY_WINDOW, CERTCTL_DISCOVERY_INTERVAL, CERTCTL_AGENT_MAX_BACKOFF.
`;

/** `certctl agent [flags]`: flags are mapped onto their CERTCTL_* variables, then the environment is read. */
export async function main(args: string[] = process.argv.slice(3), env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args,
      options: { ...Object.fromEntries(Object.keys(FLAG_ENV).map((f) => [f, { type: 'string' as const }])), help: { type: 'boolean' }, version: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    process.stderr.write(`certctl agent: ${(err as Error).message}\n\n${HELP}`);
    process.exitCode = 64; // EX_USAGE
    return;
  }
  if (parsed.values.help) return void process.stdout.write(HELP);
  if (parsed.values.version) return void process.stdout.write(`${AGENT_VERSION}\n`);
  const merged = { ...env };
  for (const [flag, name] of Object.entries(FLAG_ENV)) {
    const v = parsed.values[flag];
    if (typeof v === 'string') merged[name] = v;
  }

  let daemon: AgentDaemon;
  try {
    const config = loadAgentConfig(merged);
    daemon = new AgentDaemon(config, pino({ level: config.logLevel, base: { component: 'agent' } }));
  } catch (err) {
    if (!(err instanceof AgentConfigError)) throw err;
    process.stderr.write(`certctl agent: cannot start: ${err.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`certctl agent: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    void daemon.stop();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  try {
    await daemon.run();
  } catch (err) {
    if (!(err instanceof AgentConfigError)) throw err;
    process.stderr.write(`certctl agent: ${err.message}\n`);
    process.exit(78);
  }
  process.exit(0);
}
