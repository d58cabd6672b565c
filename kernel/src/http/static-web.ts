import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROTOCOL_MOUNT_ROOTS } from '@certctl/sdk';
import type { Ctx } from './route.js';

/** Paths the dashboard must never answer for, even with its SPA fallback: the API, probes and every protocol mount root. */
const RESERVED = [...new Set(['/api', '/.well-known', '/est', '/health', '/ready', ...PROTOCOL_MOUNT_ROOTS])];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};

// Same-origin only: scripts and the live WebSocket come from this server and nowhere else.
// 'unsafe-eval' is there for ajv, which JSON Forms uses to compile plugin config schemas at
// runtime (new Function); script sources stay limited to this origin.
const CSP = [
  "default-src 'self'", "script-src 'self' 'unsafe-eval'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
  "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'self'", "frame-ancestors 'none'", "form-action 'self'",
].join('; ');

/** web/dist beside the kernel package, from either kernel/src or kernel/dist. */
export function defaultWebDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web/dist');
}

export function isReservedPath(p: string): boolean {
  return RESERVED.some((r) => p === r || p.startsWith(`${r}/`));
}

/** Every file of the build, keyed by URL path: only these are ever served, so no path can escape the folder. */
function indexFiles(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string, prefix: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full, `${prefix}${entry.name}/`);
      else if (entry.isFile()) files.set(`${prefix}${entry.name}`, full);
    }
  };
  if (fs.existsSync(path.join(root, 'index.html'))) walk(root, '/');
  return files;
}

/**
 * Serves the built dashboard at `/` with an SPA fallback: a GET for an unknown
 * extension-less path that accepts HTML gets index.html, so deep links work.
 * API and protocol paths always fall through to the router (a JSON 404 there).
 * Mounted before the API audit middleware: loading the UI is not an API call.
 */
export function staticWeb(root: string = defaultWebDir()) {
  let files = indexFiles(root);
  return async (ctx: Ctx, next: () => Promise<void>): Promise<void> => {
    if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || isReservedPath(ctx.path)) return next();
    if (files.size === 0) files = indexFiles(root); // built after the kernel started
    let file = files.get(ctx.path);
    const isFallback = !file && !path.extname(ctx.path) && ctx.accepts('html') === 'html';
    if (isFallback || ctx.path === '/') file = files.get('/index.html');
    if (!file) {
      if (ctx.path === '/' && files.size === 0) {
        ctx.status = 503;
        ctx.type = 'text/plain';
        ctx.body = 'The dashboard is not built. Run `npm run build` (or `npm install`) and reload.\n';
        return;
      }
      return next();
    }
    let body: Buffer;
    try {
      body = await fs.promises.readFile(file);
    } catch {
      // The build changed under a running server (files replaced or removed): index it again
      // and let the router answer, rather than a bare 500 from outside the error mapper.
      files = indexFiles(root);
      return next();
    }
    const immutable = ctx.path.startsWith('/assets/');
    ctx.set('Cache-Control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Strict-Transport-Security', 'max-age=31536000');
    ctx.type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    ctx.body = body;
  };
}
