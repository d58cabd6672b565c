#!/usr/bin/env node
// Median of several bench runs: `node test/bench/lib/summarize.js run1.jsonl run2.jsonl ...`
// Groups figures by name, db and concurrency and prints one JSON line per group with the
// median value (and median baseline) and how many runs it came from.
import fs from 'node:fs';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const groups = new Map();
for (const file of process.argv.slice(2)) {
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const f = JSON.parse(line);
    const key = [f.name, f.db ?? '', f.concurrency ?? ''].join('|');
    const g = groups.get(key) ?? { ...f, values: [], baselines: [] };
    g.values.push(f.value);
    if (typeof f.baseline === 'number') g.baselines.push(f.baseline);
    groups.set(key, g);
  }
}
for (const { values, baselines, ...f } of groups.values()) {
  const out = { ...f, value: Math.round(median(values) * 100) / 100, runs: values.length };
  if (baselines.length) out.baseline = Math.round(median(baselines) * 100) / 100;
  process.stdout.write(JSON.stringify(out) + '\n');
}
