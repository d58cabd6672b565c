import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { argvProblem, checkArgv, chainBundle, DeployConfigError, keyCertChainBundle, leafChainBundle, pathProblem, pemBlocks, readVerifyEndpoint, sha256Hex, verifyEndpointProblem } from './index.js';
import { TEST_CERT_PEM } from '../testing/index.js';
import { TARGET_CHAIN_CERT_PEM as CA } from '../testing/target-fixtures.js';

describe('sha256Hex', () => {
  it('matches node:crypto on ASCII, multi-byte text and block-boundary lengths', () => {
    const samples = ['', 'abc', 'é漢字😀\ud800', ...[55, 56, 63, 64, 65, 119, 120, 1000].map((n) => 'x'.repeat(n)), TEST_CERT_PEM];
    for (const s of samples) expect(sha256Hex(s), JSON.stringify(s.slice(0, 10))).toBe(crypto.createHash('sha256').update(s, 'utf8').digest('hex'));
  });
});

describe('argv and path checks', () => {
  it('accepts plain absolute commands with any arguments but NUL', () => {
    expect(checkArgv(['/usr/sbin/nginx', '-s', 'reload'])).toEqual(['/usr/sbin/nginx', '-s', 'reload']);
    expect(argvProblem(['/usr/sbin/haproxy', '-c', '-f', '/etc/haproxy/haproxy.cfg', 'a b; c'])).toBeNull();
  });

  it.each([
    ['a shell string', '/usr/sbin/nginx -s reload'],
    ['an empty argv', []],
    ['a relative command', ['nginx', '-t']],
    ['shell characters in the command', ['/usr/sbin/nginx -s reload; rm -rf /']],
    ['a command substitution', ['/usr/sbin/$(reboot)']],
    ['a pipe', ['/bin/cat|/bin/sh']],
    ['a dot-dot command', ['/usr/sbin/../../tmp/evil']],
    ['a NUL argument', ['/usr/sbin/nginx', 'a\0b']],
    ['a non-string argument', ['/usr/sbin/nginx', 1]],
    ['too many arguments', ['/bin/true', ...Array(70).fill('x')]],
    ['an over-long argument', ['/bin/true', 'x'.repeat(5000)]],
  ])('refuses %s', (_what, argv) => {
    expect(argvProblem(argv)).toEqual(expect.any(String));
    expect(() => checkArgv(argv)).toThrow(DeployConfigError);
  });

  it('accepts absolute file paths only', () => {
    expect(pathProblem('/etc/nginx/tls/site.crt')).toBeNull();
    for (const bad of ['', 'etc/nginx/site.crt', '/etc/nginx/../shadow', '/etc/nginx/', '/etc/a\nb', '/etc/a\0b', 42]) expect(pathProblem(bad), String(bad)).toEqual(expect.any(String));
  });
});

describe('verify block', () => {
  it('reads a valid block with defaults and refuses malformed ones', () => {
    expect(readVerifyEndpoint({})).toBeNull();
    expect(readVerifyEndpoint({ verify: { host: '127.0.0.1', port: 8443 } })).toEqual({ host: '127.0.0.1', port: 8443, serverName: '127.0.0.1', timeoutMs: 5000 });
    expect(readVerifyEndpoint({ verify: { host: '::1', port: 443, server_name: 'www.example.test', timeout_ms: 900 } })).toEqual({ host: '::1', port: 443, serverName: 'www.example.test', timeoutMs: 900 });
    for (const bad of [{ host: 'a b', port: 1 }, { host: 'h', port: 0 }, { host: 'h', port: 1, extra: 1 }, { host: 'h', port: 1, timeout_ms: 5 }, { host: 'h', port: 1, server_name: 'x/y' }, 'h:1']) {
      expect(verifyEndpointProblem(bad), JSON.stringify(bad)).toEqual(expect.any(String));
    }
  });
});

describe('PEM bundles', () => {
  const KEY = '-----BEGIN EC PRIVATE KEY-----\r\nAAAA\r\n-----END EC PRIVATE KEY-----\r\n';

  it('puts the leaf before its chain, normalised and without duplicates', () => {
    const b = leafChainBundle(TEST_CERT_PEM.replace(/\n/g, '\r\n'), [CA, TEST_CERT_PEM]);
    expect(pemBlocks(b).map((x) => x.text)).toEqual([pemBlocks(TEST_CERT_PEM)[0].text, pemBlocks(CA)[0].text]);
    expect(b).not.toContain('\r');
    expect(leafChainBundle(TEST_CERT_PEM, [])).toBe(leafChainBundle(`\n${TEST_CERT_PEM}\n\n`));
    expect(chainBundle([])).toBe('');
  });

  it('makes the HAProxy file: certificate, chain, then key', () => {
    const b = keyCertChainBundle(KEY, TEST_CERT_PEM, [CA]);
    expect(pemBlocks(b).map((x) => x.label)).toEqual(['CERTIFICATE', 'CERTIFICATE', 'EC PRIVATE KEY']);
  });

  it('refuses a key in the chain, a missing certificate, or a key file without exactly one key', () => {
    expect(() => leafChainBundle(TEST_CERT_PEM, [KEY])).toThrow(/PRIVATE KEY block/);
    expect(() => leafChainBundle('not pem')).toThrow(/no PEM CERTIFICATE/);
    expect(() => keyCertChainBundle(KEY + KEY, TEST_CERT_PEM)).toThrow(/exactly one/);
  });
});
