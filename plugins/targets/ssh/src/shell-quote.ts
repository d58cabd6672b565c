import { checkArgv } from '@certctl/sdk/deploy';

/**
 * An argv array as one command line for the remote shell. SSH `exec` carries a
 * string that the remote login shell parses, so every element is wrapped in
 * single quotes (inside which POSIX shells interpret nothing) with embedded
 * quotes spelled '\''. Line breaks are refused: csh-family shells end a quoted
 * word at a newline.
 */
export function quoteArgv(argv: unknown, what = 'reload_command'): string {
  const checked = checkArgv(argv, what);
  for (const arg of checked) {
    if (/[\r\n]/.test(arg)) throw new TypeError(`${what}: an argument contains a line break`);
  }
  return checked.map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(' ');
}
