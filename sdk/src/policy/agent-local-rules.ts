import fs from 'node:fs';
import path from 'node:path';

/**
 * What an agent refuses a target plugin whatever the control plane sends. A target
 * instance's config (edited by anyone with target.manage) names the files a deploy
 * writes and the commands it runs; the agent runs as a privileged user, so these
 * rules keep a config (or a compromised control plane) from turning into a shell or
 * a write to the system's credentials. The agent (agent/src/grants.ts) and the SDK's
 * target conformance suite both apply them, so a plugin that passes the suite meets
 * the same limits on a real agent.
 */

/**
 * Where certificates live on common systems: the paths a target may write when the
 * operator sets no CERTCTL_AGENT_ALLOWED_PATHS. Anything else needs that variable.
 */
export const DEFAULT_AGENT_ALLOWED_PATHS: readonly string[] = [
  '/etc/ssl', '/etc/pki', '/etc/nginx', '/etc/apache2', '/etc/httpd', '/etc/haproxy', '/etc/traefik', '/etc/caddy',
  '/etc/envoy', '/etc/postfix', '/etc/dovecot', '/usr/local/etc', '/var/lib/certctl', '/opt/certctl',
];

/** Refused at and below these paths, even when CERTCTL_AGENT_ALLOWED_PATHS covers them. */
const REFUSED_TREES = ['/root', '/boot', '/proc', '/sys', '/dev', '/etc/ssh', '/var/spool/cron'];
/** Entries directly under /etc refused by name prefix (`/etc/sudoers.d`, `/etc/cron.daily`, `/etc/shadow-`...). */
const REFUSED_ETC_PREFIXES = ['passwd', 'shadow', 'group', 'gshadow', 'sudoers', 'cron', 'anacrontab', 'ld.so.preload'];

const within = (root: string, p: string) => p === root || p.startsWith(`${root}/`);

/**
 * Why the agent never lets a plugin touch `p` (an absolute, normalised path), or
 * null. Account and privilege files, scheduled jobs, any `.ssh` directory (every
 * user's authorized_keys), root's home, boot files and the kernel's pseudo file
 * systems: writing any of them is a way to run code as another user.
 */
export function alwaysRefusedPath(p: string): string | null {
  const abs = path.posix.resolve(p);
  for (const tree of REFUSED_TREES) if (within(tree, abs)) return `${abs} is under ${tree}, which the agent never grants`;
  const parts = abs.split('/');
  if (parts.includes('.ssh')) return `${abs} is in an .ssh directory, which the agent never grants`;
  if (parts[1] === 'etc' && parts.length > 2 && REFUSED_ETC_PREFIXES.some((n) => parts[2].startsWith(n))) return `${abs} is a system account, privilege or scheduling file, which the agent never grants`;
  return null;
}

/**
 * Programs that run whatever their arguments say: shells, command runners and
 * script interpreters. Granting one turns an argv array back into arbitrary code,
 * so the agent runs one only when the operator lists that exact path in
 * CERTCTL_AGENT_ALLOWED_COMMANDS. Matched on the base name, with version
 * suffixes (`python3.11`, `perl5.36`, `php8.2`, `lua5.4`).
 */
const RUNNERS = new Set([
  // shells
  'sh', 'bash', 'dash', 'ash', 'zsh', 'ksh', 'mksh', 'pdksh', 'csh', 'tcsh', 'fish', 'rbash', 'yash', 'elvish', 'nu', 'xonsh', 'pwsh', 'powershell',
  // multi-call binaries and command runners (they exec their arguments)
  'busybox', 'toybox', 'env', 'sudo', 'su', 'doas', 'runuser', 'pkexec', 'setpriv', 'chroot', 'nsenter', 'unshare', 'xargs', 'nohup', 'timeout',
  'nice', 'ionice', 'setsid', 'stdbuf', 'taskset', 'flock', 'watch', 'script', 'expect', 'at', 'batch', 'crontab', 'systemd-run', 'find', 'make', 'gdb', 'ssh',
  // interpreters
  'python', 'pypy', 'perl', 'ruby', 'irb', 'node', 'nodejs', 'deno', 'bun', 'php', 'lua', 'luajit', 'tclsh', 'wish', 'jshell', 'rscript', 'r', 'guile',
  'awk', 'gawk', 'mawk', 'nawk', 'busybox-awk', 'sed', 'ed', 'vi', 'vim', 'nvim', 'emacs',
]);

function runnerName(file: string): boolean {
  const base = path.posix.basename(file).toLowerCase();
  return RUNNERS.has(base) || RUNNERS.has(base.replace(/[0-9.]+$/, '').replace(/-$/, ''));
}

/** Whether `cmd` (absolute) is a shell or interpreter, by its name or, when it is a symlink, by what it points to. */
export function isShellOrInterpreter(cmd: string): boolean {
  if (runnerName(cmd)) return true;
  try {
    return runnerName(fs.realpathSync(cmd));
  } catch {
    return false;
  }
}

/**
 * Why the agent will not run `cmd` (an absolute, checked command path) for a target
 * plugin, or null when it will. A command must be declared by the plugin's manifest
 * (`capabilities.exec.commands`: installed on the agent, not sent by the control
 * plane) or listed in CERTCTL_AGENT_ALLOWED_COMMANDS; a shell or interpreter only
 * in the latter, by its exact path.
 */
export function agentCommandProblem(cmd: string, opts: { manifestCommands: readonly string[]; allowedCommands: readonly string[] }): string | null {
  const listed = opts.allowedCommands.includes(cmd);
  if (listed) return null;
  if (isShellOrInterpreter(cmd)) return `${cmd} is a shell or interpreter: the agent runs it only when CERTCTL_AGENT_ALLOWED_COMMANDS lists that exact path`;
  if (!opts.manifestCommands.includes(cmd)) return `${cmd} is neither declared by the plugin's manifest (capabilities.exec.commands) nor listed in CERTCTL_AGENT_ALLOWED_COMMANDS`;
  return null;
}
