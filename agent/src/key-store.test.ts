import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyStore, keyIdForCertificate } from './key-store.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-keys-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A self-signed certificate for a key file, made with openssl. */
function certFor(keyPath: string): string {
  return execFileSync('openssl', ['req', '-x509', '-new', '-key', keyPath, '-subj', '/CN=t.example', '-days', '2']).toString();
}

describe('key store', () => {
  it('names key files by their public key, so a certificate finds its own key', async () => {
    const store = new KeyStore(path.join(tmp, 'a'));
    await store.init();
    const k1 = await store.createKey('mc-one');
    const k2 = await store.createKey('mc-one');
    expect(k1.keyPath).toBe(path.join(store.dir, 'mc-one', `${k1.keyId}.key`));
    expect(k1.keyId).not.toBe(k2.keyId);
    const cert2 = certFor(k2.keyPath);
    expect(keyIdForCertificate(cert2)).toBe(k2.keyId);
    expect(await store.findKeyFor('mc-one', cert2)).toEqual({ keyId: k2.keyId, keyPath: k2.keyPath });
    // Another certificate's key is not found under this id.
    expect(await store.findKeyFor('mc-two', cert2)).toBeNull();
  });

  it('keeps the previous key until the new one is deployed, then prunes older ones but not newer ones', async () => {
    const store = new KeyStore(path.join(tmp, 'b'));
    await store.init();
    const k1 = await store.createKey('mc-web');
    await store.markDeployed('mc-web', k1.keyId);
    const k2 = await store.createKey('mc-web');
    // Renewal 1 deploys k2: k1 (the one it replaced) stays for rollback.
    await store.markDeployed('mc-web', k2.keyId);
    const older = await store.createKey('mc-web');
    fs.utimesSync(older.keyPath, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000)); // an abandoned CSR key
    const k3 = await store.createKey('mc-web');
    const pending = await store.createKey('mc-web');
    fs.utimesSync(pending.keyPath, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));
    await store.markDeployed('mc-web', k3.keyId);
    const left = fs.readdirSync(path.join(store.dir, 'mc-web')).filter((f) => f.endsWith('.key')).sort();
    expect(left).toEqual([`${k2.keyId}.key`, `${k3.keyId}.key`, `${pending.keyId}.key`].sort());
    expect(JSON.parse(fs.readFileSync(path.join(store.dir, 'mc-web', 'deployed.json'), 'utf8'))).toEqual({ current: k3.keyId, previous: k2.keyId });
    expect(fs.statSync(path.join(store.dir, 'mc-web', 'deployed.json')).mode & 0o777).toBe(0o600);
  });

  it('stores a server-made key only when it matches the certificate', async () => {
    const store = new KeyStore(path.join(tmp, 'c'));
    await store.init();
    const keyFile = path.join(tmp, 'server.key');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
    const cert = certFor(keyFile);
    const stored = await store.storeServerKey('mc-srv', fs.readFileSync(keyFile, 'utf8'), cert);
    expect(fs.statSync(stored.keyPath).mode & 0o777).toBe(0o600);
    expect(stored.keyId).toBe(keyIdForCertificate(cert));
    const other = await store.createKey('mc-other');
    await expect(store.storeServerKey('mc-srv', fs.readFileSync(other.keyPath, 'utf8'), cert)).rejects.toThrow(/does not match/);
    await expect(store.storeServerKey('mc-srv', 'not a key', cert)).rejects.toThrow(/cannot be parsed/);
  });

  it('tightens a key directory others could read', async () => {
    const dir = path.join(tmp, 'loose');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    await new KeyStore(dir).init();
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });
});
