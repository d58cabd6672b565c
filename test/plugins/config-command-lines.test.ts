import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_UNAVAILABLE } from '../support/test-db.js';
import { startTestKernel, type TestKernel } from '../support/test-kernel.js';

/*
 * A target config names which of its plugin's declared command lines to run; it
 * cannot widen them. Saving a config whose command line the manifest's argument
 * lists refuse (capabilities.exec.args) answers 400 naming the field and writes
 * nothing; the agent refuses the same lines on its side (agent/src/grants.ts).
 */
describe.skipIf(POSTGRES_UNAVAILABLE)('configured command lines against the manifest\'s argument lists', () => {
  let t: TestKernel;
  const haproxy = { pem_path: '/etc/haproxy/certs/site.pem' };
  const count = async () => Number(((await t.kernel.db.knex('targets').count<{ n: string }[]>({ n: '*' }))[0]).n);

  beforeAll(async () => {
    t = await startTestKernel();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('refuses a declared command with other arguments, naming the field, and writes nothing', async () => {
    const before = await count();
    for (const [type, config, field] of [
      ['haproxy', { ...haproxy, reload_command: ['/usr/bin/systemctl', 'stop', 'sshd'] }, '/config/reload_command'],
      ['haproxy', { ...haproxy, validate_command: ['/usr/sbin/haproxy', '-f', '/tmp/evil.cfg', '-db'] }, '/config/validate_command'],
      ['nginx', { cert_path: '/etc/nginx/tls/site.crt', key_path: '/etc/nginx/tls/site.key', validate_command: ['/usr/sbin/nginx', '-g', 'load_module /tmp/x.so;', '-t'] }, '/config/validate_command'],
      ['jks', { keystore_path: '/opt/app/keystore.jks', keystore_password: 'changeit', work_dir: '/var/lib/certctl/jks', keytool_command: ['/usr/bin/keytool', '-J-javaagent:/tmp/x.jar'] }, '/config/keytool_command'],
    ] as const) {
      const res = await t.api.post('/api/v1/targets', { name: `bad ${type} ${field}`, type, config });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.details, res.text).toEqual([expect.objectContaining({ path: field, message: expect.stringMatching(/only with its argument lists \(capabilities\.exec\.args\)/) })]);
      expect(res.text).not.toContain('changeit');
    }
    expect(await count()).toBe(before);
  });

  it('accepts the declared lines and commands the manifest does not constrain; a PUT is checked the same way', async () => {
    const ok = await t.api.post('/api/v1/targets', { name: 'haproxy ok', type: 'haproxy', config: { ...haproxy, validate_command: ['/usr/sbin/haproxy', '-c', '-f', '/srv/lb/haproxy.cfg'], reload_command: ['/usr/bin/systemctl', 'reload', 'haproxy'] } });
    expect(ok.status, ok.text).toBe(201);
    // A command the manifest does not declare: the agent's CERTCTL_AGENT_ALLOWED_COMMANDS decides, and it runs as configured.
    const wrapper = await t.api.put(`/api/v1/targets/${ok.body.id}`, { config: { reload_command: ['/usr/local/sbin/restart-haproxy', '--graceful'] } });
    expect(wrapper.status, wrapper.text).toBe(200);
    const bad = await t.api.put(`/api/v1/targets/${ok.body.id}`, { config: { reload_command: ['/bin/systemctl', 'restart', 'sshd'] } });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.body.error.details).toEqual([expect.objectContaining({ path: '/config/reload_command' })]);
    expect((await t.api.get(`/api/v1/targets/${ok.body.id}`)).body.config.reload_command).toEqual(['/usr/local/sbin/restart-haproxy', '--graceful']);
    const jks = await t.api.post('/api/v1/targets', { name: 'jks ok', type: 'jks', config: { keystore_path: '/opt/app/keystore.jks', keystore_password: 'changeit', work_dir: '/var/lib/certctl/jks' } });
    expect(jks.status, jks.text).toBe(201);
  });
});
