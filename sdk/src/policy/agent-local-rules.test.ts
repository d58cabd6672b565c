import { describe, expect, it } from 'vitest';
import { agentCommandProblem, alwaysRefusedPath, configOriginRule, DEFAULT_AGENT_ALLOWED_PATHS, isShellOrInterpreter } from './index.js';

describe('agent-local rules', () => {
  it('never grants account, privilege, scheduling, ssh or kernel files', () => {
    for (const p of ['/etc/passwd', '/etc/shadow-', '/etc/sudoers', '/etc/sudoers.d/90-x', '/etc/cron.d/x', '/etc/crontab', '/etc/cron.hourly/y', '/etc/ld.so.preload',
      '/root', '/root/app/cert.pem', '/home/u/.ssh/authorized_keys', '/var/lib/app/.ssh/id_ed25519', '/etc/ssh/sshd_config', '/boot/x', '/proc/1/mem', '/sys/x', '/dev/sda', '/var/spool/cron/crontabs/root']) {
      expect(alwaysRefusedPath(p), p).not.toBeNull();
    }
    for (const p of ['/etc/ssl/certs/site.pem', '/etc/nginx/tls/site.key', '/etc/cronus-app/x.pem'.replace('/etc/cronus-app', '/srv/cronus'), '/rootfs-not/x', '/opt/certctl/a.pem']) {
      expect(alwaysRefusedPath(p), p).toBeNull();
    }
    expect(DEFAULT_AGENT_ALLOWED_PATHS.every((p) => alwaysRefusedPath(p) === null)).toBe(true);
  });

  it('knows shells and interpreters by name, version suffix and symlink target', () => {
    for (const c of ['/bin/sh', '/usr/bin/bash', '/usr/bin/env', '/usr/bin/python3', '/usr/bin/python3.11', '/usr/bin/perl5.36', '/usr/bin/php8.2', '/usr/bin/gawk', '/bin/busybox', '/usr/bin/sudo']) {
      expect(isShellOrInterpreter(c), c).toBe(true);
    }
    for (const c of ['/usr/sbin/nginx', '/usr/sbin/apache2', '/usr/bin/systemctl', '/usr/bin/openssl', '/usr/bin/keytool', '/usr/sbin/haproxy']) expect(isShellOrInterpreter(c), c).toBe(false);
  });

  it('runs declared or listed commands only; a shell only by exact listing', () => {
    const opts = { manifestCommands: ['/usr/sbin/nginx', '/bin/sh'], allowedCommands: ['/usr/bin/pkill'] };
    expect(agentCommandProblem('/usr/sbin/nginx', opts)).toBeNull();
    expect(agentCommandProblem('/usr/bin/pkill', opts)).toBeNull();
    expect(agentCommandProblem('/usr/bin/tee', opts)).toMatch(/neither declared/);
    expect(agentCommandProblem('/bin/sh', opts)).toMatch(/shell or interpreter/);
    expect(agentCommandProblem('/bin/sh', { ...opts, allowedCommands: ['/bin/sh'] })).toBeNull();
  });

  it('derives config origins, never metadata or unspecified addresses', () => {
    expect(configOriginRule('https://ca.example.com./x')).toEqual({ rule: 'ca.example.com:443' });
    expect(configOriginRule('http://[::1]:8080/')).toEqual({ rule: 'http://[::1]:8080' });
    for (const bad of ['http://169.254.169.254/', 'http://[::ffff:169.254.169.254]/', 'http://2852039166/', 'http://[fd00:ec2::254]/', 'http://0.0.0.0/', 'http://[::]/']) {
      expect(configOriginRule(bad), bad).toEqual({ problem: expect.stringMatching(/config cannot grant it/) });
    }
  });
});
