/**
 * Input checks for what an operator configures on a target: file paths the
 * agent will write and commands it will run. Commands are argv arrays handed to
 * the agent's exec (never a shell), so the checks are about the command itself
 * being an exact, plain executable path, and about sizes; arguments may hold
 * any text but NUL. The agent's broker repeats its own checks; these let a
 * plugin refuse bad config up front with a clear reason, before touching files.
 */

export const DEPLOY_LIMITS = { maxPathLength: 4096, maxCommandLength: 255, maxArgs: 64, maxArgLength: 4096, maxFiles: 16 } as const;

/** Thrown by checkArgv / checkPath; `message` says what is wrong. */
export class DeployConfigError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'DeployConfigError';
  }
}

// What a command path may consist of: no whitespace, quotes, `;`, `|`, `&`, `$`, backticks, redirections or globs.
const COMMAND_PATH = /^\/[A-Za-z0-9_.+\/-]+$/;
const hasDotDot = (p: string) => p.split(/[\\/]+/).includes('..');

/** Null when `value` is an absolute file path fit to write, else why not. */
export function pathProblem(value: unknown, what = 'path'): string | null {
  if (typeof value !== 'string' || value.length === 0) return `${what} must be a non-empty string`;
  if (value.length > DEPLOY_LIMITS.maxPathLength) return `${what} is longer than ${DEPLOY_LIMITS.maxPathLength} characters`;
  if (/[\0\r\n]/.test(value)) return `${what} must not contain NUL or line breaks`;
  if (!value.startsWith('/')) return `${what} must be an absolute path: ${JSON.stringify(value)}`;
  if (hasDotDot(value)) return `${what} must not contain a ".." segment: ${JSON.stringify(value)}`;
  if (value.endsWith('/')) return `${what} must name a file, not a directory: ${JSON.stringify(value)}`;
  return null;
}

/** Null when `argv` is a safe command array (absolute command path, plain arguments, bounded sizes), else why not. */
export function argvProblem(argv: unknown, what = 'command'): string | null {
  if (!Array.isArray(argv)) return `${what} must be an array of strings (the command path, then its arguments), not ${typeof argv === 'string' ? 'a shell string' : typeof argv}`;
  if (argv.length === 0) return `${what} must name a command`;
  if (argv.length > DEPLOY_LIMITS.maxArgs) return `${what} has more than ${DEPLOY_LIMITS.maxArgs} elements`;
  if (argv.some((a) => typeof a !== 'string')) return `${what} must contain strings only`;
  const [command, ...args] = argv as string[];
  if (command.length > DEPLOY_LIMITS.maxCommandLength) return `${what}: the command path is longer than ${DEPLOY_LIMITS.maxCommandLength} characters`;
  if (!command.startsWith('/')) return `${what}: the command must be an absolute path: ${JSON.stringify(command)}`;
  if (!COMMAND_PATH.test(command)) return `${what}: the command path may hold only letters, digits and _ . + / - (no spaces or shell characters): ${JSON.stringify(command)}`;
  if (hasDotDot(command)) return `${what}: the command path must not contain a ".." segment`;
  if (command.endsWith('/')) return `${what}: the command path names a directory`;
  for (const a of args) {
    if (a.includes('\0')) return `${what}: an argument contains NUL`;
    if (a.length > DEPLOY_LIMITS.maxArgLength) return `${what}: an argument is longer than ${DEPLOY_LIMITS.maxArgLength} characters`;
  }
  return null;
}

/** The argv, typed, when safe; throws DeployConfigError otherwise. */
export function checkArgv(argv: unknown, what = 'command'): [string, ...string[]] {
  const problem = argvProblem(argv, what);
  if (problem) throw new DeployConfigError(problem);
  return [...(argv as string[])] as [string, ...string[]];
}

/** The path when fit to write; throws DeployConfigError otherwise. */
export function checkPath(value: unknown, what = 'path'): string {
  const problem = pathProblem(value, what);
  if (problem) throw new DeployConfigError(problem);
  return value as string;
}
