import fs from 'node:fs';

/*
 * CPU time from Linux /proc (null elsewhere), in ms: what a run cost each party,
 * which moves far less with other load on a shared machine than rates do.
 * Ticks are taken as 100 Hz (USER_HZ on Linux).
 */
const TICK_MS = 10;

function statFields(file) {
  const stat = fs.readFileSync(file, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

const ticks = (f) => Number(f[11]) + Number(f[12]);

/** CPU used so far by the calling thread (a worker thread's own, not its process's). */
export function threadCpuMs() {
  try {
    return ticks(statFields('/proc/thread-self/stat')) * TICK_MS;
  } catch {
    return null;
  }
}

/** CPU used so far by process `pid` and its direct children (PostgreSQL's server processes under the postmaster). */
export function processTreeCpuMs(pid) {
  try {
    let total = ticks(statFields(`/proc/${pid}/stat`));
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const f = statFields(`/proc/${d}/stat`);
        if (Number(f[1]) === pid) total += ticks(f);
      } catch {
        // The process ended meanwhile.
      }
    }
    return total * TICK_MS;
  } catch {
    return null;
  }
}

/** The postmaster of the PostgreSQL server listening on `port` (its command line names the port), or null. */
export function postmasterPid(port) {
  try {
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
        if (/postgres/.test(cmd) && (cmd.includes(`-p\0${port}\0`) || cmd.includes(`-p ${port} `) || cmd.includes(`port=${port}`))) return Number(d);
      } catch {
        // The process ended meanwhile.
      }
    }
  } catch {
    // No /proc.
  }
  return null;
}
