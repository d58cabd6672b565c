#!/usr/bin/env node
// Benchmark dispatcher: `npm run bench -- NAME [options]` runs test/bench/NAME.js
// (or .mjs). Each bench prints one JSON line per figure on stdout.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const benches = fs.readdirSync(here)
  .filter((f) => /\.(m?js)$/.test(f) && f !== 'run.js')
  .map((f) => f.replace(/\.m?js$/, ''))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || !benches.includes(name)) {
  process.stderr.write(`${name ? `unknown bench "${name}"` : 'no bench named'}\n`);
  process.stderr.write(`usage: npm run bench -- NAME [options]\navailable: ${benches.join(', ')}\n`);
  process.exit(2);
}
const file = ['.js', '.mjs'].map((ext) => path.join(here, name + ext)).find((f) => fs.existsSync(f));
const mod = await import(pathToFileURL(file).href);
if (typeof mod.run !== 'function') {
  process.stderr.write(`${file} does not export run(args)\n`);
  process.exit(2);
}
try {
  await mod.run(args);
  process.exit(0);
} catch (err) {
  process.stderr.write(`bench ${name} failed: ${err?.stack ?? err}\n`);
  process.exit(1);
}
