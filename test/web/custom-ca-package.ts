import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './browser.js';

const run = promisify(execFile);

/** Bundles and packs sdk/examples/custom-ca into a .tgz, as an operator would receive it. */
export async function packCustomCa(): Promise<{ file: string; cleanup(): void }> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-web-plugin-'));
  const example = path.join(ROOT, 'sdk/examples/custom-ca');
  const pkgDir = path.join(work, 'pkg');
  fs.mkdirSync(pkgDir);
  const buildScript = path.join(example, 'build.mjs');
  const { bundle } = (await import(buildScript)) as { bundle: (o: { outfile: string }) => Promise<unknown> };
  await bundle({ outfile: path.join(pkgDir, 'dist', 'plugin.js') });
  for (const f of ['package.json', 'README.md']) fs.copyFileSync(path.join(example, f), path.join(pkgDir, f));
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: pkgDir });
  const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string }[];
  return { file: path.join(work, packed[0].filename), cleanup: () => fs.rmSync(work, { recursive: true, force: true }) };
}
