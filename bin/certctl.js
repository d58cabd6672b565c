#!/usr/bin/env node
// The one certctl executable: `certctl serve`, later `certctl agent` and CLI verbs.
import { main } from '../kernel/dist/cli.js';

main().catch((err) => {
  process.stderr.write(`certctl: ${err?.stack ?? err}\n`);
  process.exit(1);
});
