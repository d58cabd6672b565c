import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';
import { chromiumAvailable, ensureWebBuilt, launchChromium, screenshot, visibleButtonIds } from './browser.js';
import { packCustomCa } from './custom-ca-package.js';

/**
 * The dashboard in Debian Chromium against a real in-process kernel serving the
 * built web/dist: sign-in, every page, plugin install and grant, an issuer
 * created through its schema form, a job watched live, the audit trail, and a
 * viewer key that is offered no mutation. Screenshots go to test-results/web/.
 */
describe.skipIf(!chromiumAvailable())('dashboard end to end (Chromium)', () => {
  let t: TestKernel;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let pkg: { file: string; cleanup(): void };
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    ensureWebBuilt();
    pkg = await packCustomCa();
    t = await startTestKernel({
      // The test drives the job queue itself (drainOnce) so it can watch states change; keys are
      // made on the server because no agent runs here.
      env: { CERTCTL_SCHEDULER_ENABLED: 'false', CERTCTL_KEYGEN_MODE: 'server' },
      start: { jobHandlers: { Validation: async () => ({ status: 'completed', result: { checked: true } }) } },
    });
    browser = await launchChromium();
    admin = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    page = await admin.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  });

  beforeEach((ctx) => {
    ctx.onTestFailed(async () => {
      if (page) await screenshot(page, `FAILED-${ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`).catch(() => {});
    });
  });

  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    pkg?.cleanup();
  });

  const byId = (p: Page, id: string) => p.locator(`[data-testid="${id}"]`);
  const untestable = (p: Page) => p.$$eval('button, input, select, textarea, a[href]', (els) =>
    els.filter((e) => !e.getAttribute('data-testid')).map((e) => e.outerHTML.slice(0, 80)));

  async function signIn(p: Page, key: string): Promise<void> {
    await p.goto(`${t.kernel.url}/`);
    await byId(p, 'login-key').fill(key);
    await byId(p, 'login-submit').click();
    await byId(p, 'whoami').waitFor();
  }

  it('signs in with an API key and lands on the dashboard with the onboarding wizard', async () => {
    await page.goto(`${t.kernel.url}/certificates`);
    await byId(page, 'page-login').waitFor();
    await screenshot(page, '00-login');
    await byId(page, 'login-key').fill('cctl_not_a_real_key');
    await byId(page, 'login-submit').click();
    await expect(byId(page, 'login-error').textContent()).resolves.toMatch(/Invalid|unauthenticated/i);
    await signIn(page, t.adminKey);
    await byId(page, 'page-dashboard').waitFor();
    await byId(page, 'onboarding-banner').waitFor();
    await byId(page, 'dashboard-total').waitFor();
    await expect(byId(page, 'live-status').textContent()).resolves.toContain('open');
    await screenshot(page, '01-dashboard');
    // The key lives in sessionStorage, not in a cookie or localStorage.
    expect(await page.evaluate(() => Object.keys(sessionStorage))).toContain('certctl:api-key');
    expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toContain(t.adminKey);
  });

  it('opens every page from the navigation without errors', async () => {
    const navIds = await page.$$eval('[data-testid^="nav-"]', (els) => els.map((e) => e.getAttribute('data-testid')!));
    expect(navIds.length).toBeGreaterThanOrEqual(20);
    for (const nav of navIds) {
      await byId(page, nav).click();
      const name = nav.replace(/^nav-/, '');
      await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'), undefined, { timeout: 10_000 });
      await page.waitForTimeout(150);
      const errors = await page.$$eval('[role="alert"], .state-error', (els) => els.map((e) => e.textContent?.trim()).filter(Boolean));
      expect(errors, `${name} shows an error`).toEqual([]);
      expect(await untestable(page), `${name}: interactive elements without data-testid`).toEqual([]);
      await screenshot(page, `10-${name}`);
    }
    // A deep link served through the SPA fallback.
    await page.goto(`${t.kernel.url}/no/such/page`);
    await byId(page, 'page-not-found').waitFor();
  });

  it('walks the onboarding wizard: CA, agent install commands, certificate, done', async () => {
    await page.goto(`${t.kernel.url}/`);
    await byId(page, 'onboarding-start').click();
    await byId(page, 'onboarding-step-ca').waitFor();
    await byId(page, 'onboarding-issuer-type').waitFor();
    await screenshot(page, '15-onboarding-ca');
    await byId(page, 'onboarding-next-1').click();
    await byId(page, 'onboarding-os-macos').click();
    const install = await byId(page, 'onboarding-install').textContent();
    expect(install).toContain('certctl.js agent');
    expect(install).toContain(`CERTCTL_SERVER_URL=${t.kernel.url}`);
    await expect(byId(page, 'onboarding-agents').textContent()).resolves.toMatch(/0 agent/);
    await screenshot(page, '16-onboarding-agent');
    await byId(page, 'onboarding-next-2').click();
    await byId(page, 'onboarding-cert-form-field-common_name').waitFor();
    await screenshot(page, '17-onboarding-certificate');
    await byId(page, 'onboarding-cert-cancel').click();
    await byId(page, 'onboarding-finish').click();
    await byId(page, 'page-dashboard').waitFor();
    expect(await page.evaluate(() => localStorage.getItem('certctl:onboarding-dismissed'))).toBe('1');
    expect(await byId(page, 'onboarding-banner').count()).toBe(0);
  });

  it('installs a plugin from a .tgz and grants the capabilities it asks for', async () => {
    await byId(page, 'nav-plugins').click();
    await byId(page, 'plugins-install-file').setInputFiles(pkg.file);
    await byId(page, 'plugins-install-submit').click();
    await expect(byId(page, 'plugins-install-result').textContent()).resolves.toContain('custom-ca installed');
    await byId(page, 'plugin-grant-pending').waitFor();
    await expect(byId(page, 'plugin-requested').textContent()).resolves.toContain('http://127.0.0.1');
    await screenshot(page, '20-plugin-installed');
    await byId(page, 'plugin-grant').click();
    await byId(page, 'plugin-disable').waitFor();
    await expect(byId(page, 'plugin-status').textContent()).resolves.toBe('enabled');
    await expect(byId(page, 'plugin-granted').textContent()).resolves.toContain('http://127.0.0.1');
    await screenshot(page, '21-plugin-granted');
    const stored = await t.api.get('/api/v1/plugins/custom-ca');
    expect(stored.body.installation).toMatchObject({ grant_pending: false, enabled: true });
  });

  it('creates an issuer through the plugin schema form: bad input is refused, the secret stays write-only', async () => {
    const TOKEN = 'ui-secret-token-7f3a9c21';
    await byId(page, 'nav-issuers').click();
    await byId(page, 'issuers-create').click();
    await byId(page, 'issuer-create-type').selectOption('custom-ca');
    await byId(page, 'issuer-create-config-field-url').waitFor();
    await byId(page, 'issuer-create-base-field-name').fill('Custom CA via UI');
    await byId(page, 'issuer-create-config-field-url').fill('not a url');
    await byId(page, 'issuer-create-config-field-token').fill('short');
    await byId(page, 'issuer-create-submit').click();
    const errors = await byId(page, 'issuer-create-config-errors').textContent();
    expect(errors).toMatch(/url/);
    expect(errors).toMatch(/token/);
    expect(await untestable(page)).toEqual([]);
    await screenshot(page, '30-issuer-validation');
    expect((await t.api.get('/api/v1/issuers')).body.total).toBe(0);

    expect(await byId(page, 'issuer-create-config-field-token').getAttribute('type')).toBe('password');
    await byId(page, 'issuer-create-config-field-url').fill('http://127.0.0.1:9/ca');
    await byId(page, 'issuer-create-config-field-token').fill(TOKEN);
    await byId(page, 'issuer-create-submit').click();
    await byId(page, 'issuer-detail').waitFor();
    await expect(byId(page, 'issuer-secrets-set').textContent()).resolves.toBe('token');
    await expect(byId(page, 'issuer-config').textContent()).resolves.toContain('http://127.0.0.1:9/ca');
    expect(await page.content()).not.toContain(TOKEN);
    // Editing: the secret input starts empty and says a value is stored.
    await byId(page, 'issuer-edit').click();
    const token = byId(page, 'issuer-edit-form-field-token');
    await token.waitFor();
    expect(await token.inputValue()).toBe('');
    expect(await token.getAttribute('placeholder')).toMatch(/stored/);
    await screenshot(page, '31-issuer-created');
    const issuers = await t.api.get('/api/v1/issuers');
    expect(issuers.body.data).toEqual([expect.objectContaining({ name: 'Custom CA via UI', type: 'custom-ca', secret_fields_set: ['token'] })]);
    await byId(page, 'issuer-edit-cancel').click();
  });

  it('creates a certificate, watches its issuance job reach Completed live, then revokes it', async () => {
    // A local CA through the same schema form, with the plugin's defaults.
    await byId(page, 'nav-issuers').click();
    await byId(page, 'issuers-create').click();
    await byId(page, 'issuer-create-type').selectOption('local-ca');
    await byId(page, 'issuer-create-config-field-subject').waitFor();
    expect(await byId(page, 'issuer-create-config-field-subject').inputValue()).toBe('CN=certctl Local CA');
    await byId(page, 'issuer-create-base-field-name').fill('Local CA');
    await byId(page, 'issuer-create-submit').click();
    await page.locator('[data-testid="issuer-detail"] h3', { hasText: 'Local CA' }).waitFor();
    const localCa = (await t.api.get('/api/v1/issuers?type=local-ca')).body.data[0];
    expect(localCa).toMatchObject({ name: 'Local CA', status: 'enabled' });

    await byId(page, 'nav-certificates').click();
    await byId(page, 'certificates-create').click();
    await byId(page, 'certificate-create-form-field-common_name').waitFor();
    await byId(page, 'certificate-create-form-field-name').fill('web frontend');
    await byId(page, 'certificate-create-form-field-common_name').fill('web.e2e.example');
    await byId(page, 'certificate-create-form-field-issuer_id').fill(localCa.id);
    await screenshot(page, '35-certificate-form');
    await byId(page, 'certificate-create-submit').click();
    await byId(page, 'page-certificate').waitFor();
    const certId = page.url().split('/certificates/')[1];
    await page.locator('[data-testid="certificate-jobs"] td', { hasText: 'Issuance' }).first().waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="live-status"]')?.textContent?.includes('open'));
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 7; });
    await screenshot(page, '36-certificate-pending');

    // The kernel's issuance handler runs (the scheduler is off so the test decides when).
    for (let i = 0; i < 10; i++) {
      await t.kernel.jobs.drainOnce(undefined, { waitForJobs: true });
      const jobs = (await t.api.get(`/api/v1/certificates/${certId}/jobs`)).body.data as { status: string }[];
      if (jobs.every((j) => j.status === 'Completed')) break;
    }
    await page.waitForFunction(() => document.querySelector('[data-testid="certificate-status"]')?.textContent === 'Active', undefined, { timeout: 10_000 });
    await page.locator('[data-testid="certificate-jobs"] td', { hasText: 'Completed' }).first().waitFor();
    await page.locator('[data-testid="certificate-versions"] tbody tr').first().waitFor();
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
    await screenshot(page, '37-certificate-issued');

    await byId(page, 'certificate-revoke').click();
    await byId(page, 'certificate-revoke-reason').selectOption('keyCompromise');
    await byId(page, 'certificate-revoke-confirm').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="certificate-status"]')?.textContent === 'Revoked', undefined, { timeout: 10_000 });
    expect(await byId(page, 'certificate-revoke').count()).toBe(0);
    await screenshot(page, '38-certificate-revoked');
    expect((await t.api.get(`/api/v1/certificates/${certId}`)).body).toMatchObject({ status: 'Revoked', revocation_reason: 'keyCompromise' });
  });

  it('shows a job reaching Completed live, without a reload', async () => {
    const [job] = await t.kernel.jobs.enqueue({ type: 'Validation', payload: { from: 'e2e' } });
    await page.goto(`${t.kernel.url}/jobs/${job.id}`);
    await expect(byId(page, 'job-status').textContent()).resolves.toBe('Pending');
    await page.waitForFunction(() => document.querySelector('[data-testid="live-status"]')?.textContent?.includes('open'));
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42; });
    await screenshot(page, '40-job-pending');
    await t.kernel.jobs.drainOnce(undefined, { waitForJobs: true });
    await page.waitForFunction(() => document.querySelector('[data-testid="job-status"]')?.textContent === 'Completed', undefined, { timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    await expect(byId(page, 'job-result').textContent()).resolves.toContain('checked');
    await byId(page, 'job-events').locator('text=job_completed').waitFor();
    await screenshot(page, '41-job-completed');
  });

  it('lists the lifecycle entries in the audit trail and verifies the chain', async () => {
    await byId(page, 'nav-audit').click();
    await byId(page, 'audit-filter-category').selectOption('lifecycle');
    const table = byId(page, 'audit-table');
    for (const action of ['plugin_installed', 'issuer_created', 'certificate_created', 'job_completed', 'certificate_revoked']) {
      await table.locator(`td:text-is("${action}")`).first().waitFor({ timeout: 10_000 });
    }
    await byId(page, 'audit-verify').click();
    await expect(byId(page, 'audit-verify-result').textContent()).resolves.toMatch(/Chain intact/);
    const download = page.waitForEvent('download');
    await byId(page, 'audit-export-csv').click();
    expect((await download).suggestedFilename()).toBe('audit.csv');
    await screenshot(page, '50-audit');
  });

  it('offers a viewer key no mutation buttons', async () => {
    // The viewer key is made on the API keys page and shown exactly once.
    await byId(page, 'nav-keys').click();
    await byId(page, 'keys-create').click();
    await byId(page, 'keys-create-name').fill('read-only dashboard');
    await byId(page, 'keys-create-role').selectOption('role-viewer');
    await byId(page, 'keys-create-submit').click();
    const viewerKey = (await byId(page, 'keys-new-secret').textContent())!.trim();
    expect(viewerKey).toMatch(/^cctl_/);
    await screenshot(page, '59-key-created');
    await byId(page, 'keys-new-done').click();
    expect(await page.content()).not.toContain(viewerKey);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    try {
      const v = await ctx.newPage();
      await signIn(v, viewerKey);
      expect(await v.locator('[data-testid="nav-keys"]').count()).toBe(0);
      for (const [path, pageId] of [['/certificates', 'page-certificates'], ['/issuers', 'page-issuers'], ['/plugins', 'page-plugins'], ['/teams', 'page-teams'], ['/jobs', 'page-jobs'], ['/profiles', 'page-profiles'], ['/agents', 'page-agents']]) {
        await v.goto(`${t.kernel.url}${path}`);
        await byId(v, pageId).waitFor();
        await v.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
        await v.waitForTimeout(150);
        const mutations = (await visibleButtonIds(v)).filter((id) => /create|delete|install|grant|approve|reject|cancel|renew|revoke|edit|bulk|-new$/.test(id) && !/-sort-/.test(id));
        expect(mutations, path).toEqual([]);
        await screenshot(v, `60-viewer${path.replace(/\//g, '-')}`);
      }
      // The issuer detail opens read-only.
      await v.goto(`${t.kernel.url}/issuers`);
      await v.locator('[data-testid^="issuers-table-open-"]').first().click();
      await byId(v, 'issuer-detail').waitFor();
      expect(await v.locator('[data-testid="issuer-edit"]').count()).toBe(0);
    } finally {
      await ctx.close();
    }
  });

  it('stays interactive with 100,000 certificates (measured and printed, not asserted)', async () => {
    const seeded = Date.now();
    await t.kernel.db.knex.raw(`
      INSERT INTO managed_certificates (id, name, common_name, status, environment, expires_at, created_at, updated_at)
      SELECT 'mc-bulk-' || lpad(i::text, 6, '0'), 'bulk-' || i, 'host' || i || '.bulk.example',
             (ARRAY['Active','Active','Active','Expiring','Expired','Pending'])[1 + i % 6], 'prod',
             now() + ((i % 400) - 30) * interval '1 day', now(), now()
      FROM generate_series(1, 100000) AS i`);
    const seedMs = Date.now() - seeded;
    const measure = async (path: string, ready: string) => {
      const started = Date.now();
      await page.goto(`${t.kernel.url}${path}`);
      await page.locator(ready).first().waitFor({ timeout: 30_000 });
      // Interactive: the navigation answers a click.
      await byId(page, 'nav-jobs').isEnabled();
      return Date.now() - started;
    };
    const dashboardMs = await measure('/', '[data-testid="dashboard-total"]');
    expect(await byId(page, 'dashboard-total').textContent()).toMatch(/^1000\d\d\s*certificates/);
    const certificatesMs = await measure('/certificates', '[data-testid^="certificates-table-row-"]');
    expect(await byId(page, 'certificates-table-total').textContent()).toMatch(/^1000\d\d total$/);
    const nextStarted = Date.now();
    await byId(page, 'certificates-table-next').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="certificates-table-page"]')?.textContent === 'page 2');
    await page.locator('[data-testid^="certificates-table-row-"]').first().waitFor();
    const nextPageMs = Date.now() - nextStarted;
    await screenshot(page, '70-certificates-100k');
    for (const [name, value] of [['web_seed_100k_certificates', seedMs], ['web_dashboard_interactive_100k', dashboardMs], ['web_certificates_first_page_100k', certificatesMs], ['web_certificates_next_page_100k', nextPageMs]] as const) {
      process.stdout.write(`${JSON.stringify({ name, value, unit: 'ms' })}\n`);
    }
  });

  it('keeps the browser console free of errors', () => {
    expect(consoleErrors.filter((e) => !/Failed to load resource: the server responded with a status of 401/.test(e))).toEqual([]);
  });
});
