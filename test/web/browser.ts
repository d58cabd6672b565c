import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WEB_DIST = path.join(ROOT, 'web/dist');
export const SCREENSHOTS = path.join(ROOT, 'test-results/web');
export const CHROMIUM = process.env.CERTCTL_CHROMIUM ?? '/usr/bin/chromium';

/** The flags this machine's Debian Chromium needs headless (ARCHITECTURE.md section 12). */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const chromiumAvailable = (): boolean => fs.existsSync(CHROMIUM);

/** `npm test` builds web/dist first; a lone run of this file builds it when missing. */
export function ensureWebBuilt(): void {
  if (fs.existsSync(path.join(WEB_DIST, 'index.html'))) return;
  execFileSync('npm', ['run', 'build', '-w', 'web'], { cwd: ROOT, stdio: 'inherit' });
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** The test ids of every visible button on the page. */
export async function visibleButtonIds(page: Page): Promise<string[]> {
  return page.$$eval('button, input[type="file"]', (els) =>
    els.filter((e) => (e as HTMLElement).offsetParent !== null).map((e) => e.getAttribute('data-testid') ?? `(no testid: ${e.textContent?.trim()})`));
}
