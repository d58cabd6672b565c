import { describe, expect, it } from 'vitest';
import { digestSubject, renderDigestHtml, renderDigestText, urgency, type DigestData } from './digest-content.js';

const data = (over: Partial<DigestData> = {}): DigestData => ({
  generated_at: '2026-11-22T10:00:00.000Z',
  period_hours: 24,
  certificates: { total: 12, active: 9, expiring: 2, expired: 1, revoked: 0, failed: 0 },
  agents: { total: 3, online: 2 },
  jobs: { by_status: { Completed: 4, Failed: 1 }, failed: [{ id: 'job-1', type: 'Renewal', certificate_id: 'mc-1', last_error: 'CA <down>' }] },
  expiring: [
    { id: 'mc-1', name: 'a', common_name: '<script>alert(1)</script>.example', status: 'Expiring', expires_at: '2026-11-25T00:00:00.000Z', days_left: 2 },
    { id: 'mc-2', name: 'b', common_name: 'later.example', status: 'Active', expires_at: '2026-12-12T00:00:00.000Z', days_left: 20 },
  ],
  ...over,
});

describe('digest rendering', () => {
  it('badges by urgency: expired and a week red, two weeks orange, beyond amber', () => {
    expect(urgency(-1)).toEqual({ label: 'expired', color: '#b91c1c' });
    expect(urgency(1).label).toBe('1 day');
    expect(urgency(7).color).toBe('#dc2626');
    expect(urgency(14).color).toBe('#ea580c');
    expect(urgency(15).color).toBe('#ca8a04');
  });

  it('HTML and text carry the same facts; names from the inventory are escaped', () => {
    const d = data();
    const html = renderDigestHtml(d);
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;.example');
    expect(html).toContain('CA &lt;down&gt;');
    expect(html).toMatch(/>12<\/div><div[^>]*>Certificates</);
    expect(html).toMatch(/>2<\/div><div[^>]*>Active agents</);
    const text = renderDigestText(d);
    expect(text).toContain('Expiring (30 days):   2');
    expect(text).toContain('  Failed: 1');
    expect(text).toContain('later.example (mc-2) expires 2026-12-12: 20 days');
    expect(digestSubject(d)).toBe('certctl digest: 2 expiring, 1 expired of 12 certificates');
  });

  it('says so when nothing expires and no job ran', () => {
    const d = data({ expiring: [], jobs: { by_status: {}, failed: [] } });
    expect(renderDigestHtml(d)).toContain('No certificate expires within this window.');
    expect(renderDigestText(d)).toContain('  no job activity');
  });
});
