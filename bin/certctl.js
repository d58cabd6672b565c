#!/usr/bin/env node
// The one certctl executable: `certctl serve` and the CLI verbs live in the kernel;
// `certctl agent` is the agent package, loaded only for that verb (the kernel does
// not depend on the agent).
const run = process.argv[2] === 'agent'
  ? import('../agent/dist/cli.js').then((m) => m.main(process.argv.slice(3)))
  : import('../kernel/dist/cli.js').then((m) => m.main());

run.catch((err) => {
  process.stderr.write(`certctl: ${err?.stack ?? err}\n`);
  process.exit(1);
});
