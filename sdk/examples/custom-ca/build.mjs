// Bundles the plugin into ONE script for the isolate runtime: no imports left
// (the isolate has no module loader and no Node built-ins), CommonJS shape so the
// host finds the plugin on module.exports.default.
import { build } from 'esbuild';

export async function bundle({ outfile = 'dist/plugin.js', absWorkingDir = new URL('.', import.meta.url).pathname } = {}) {
  return build({
    absWorkingDir,
    entryPoints: ['src/plugin.ts'],
    outfile,
    bundle: true,
    format: 'cjs',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    legalComments: 'none',
    logLevel: 'warning',
  });
}

if (import.meta.url === `file://${process.argv[1]}`) await bundle();
