import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixturePlugin } from '../../../../test/plugins/install-fixtures.js';
import { commitStagedPackage, ensureUnpacked, packageDir, stagePackage, stagingRoot, sweepPackageFolders } from './package-files.js';

describe('installed package folders', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-pkg-files-'));
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

  it('stages, checks and commits a package; a refused one leaves no staging folder', async () => {
    const archive = fixturePlugin({ id: 'files-ca', version: '2.0.0' });
    const staged = await stagePackage(archive, { dataDir, kernelVersion: '0.1.0' });
    expect(staged).toMatchObject({ packageName: 'certctl-plugin-acme-widgets', version: '2.0.0', sha256: sha(archive), entry: { id: 'files-ca', status: 'enabled', runtime: 'isolate' } });
    const rel = await commitStagedPackage(staged, dataDir);
    expect(rel).toMatch(/^plugins\/files-ca\/2\.0\.0-[0-9a-f]{8}$/);
    expect(fs.existsSync(path.join(packageDir(dataDir, rel)!, 'dist/plugin.js'))).toBe(true);
    await expect(stagePackage(fixturePlugin({ manifest: { engines: { certctl: '>=5.0.0' } } }), { dataDir, kernelVersion: '0.1.0' })).rejects.toThrow(/requires certctl >=5\.0\.0/);
    expect(fs.readdirSync(stagingRoot(dataDir))).toEqual([]);
  });

  it('only ever resolves stored folder names it writes itself', () => {
    expect(packageDir(dataDir, 'plugins/x-ca/1.0.0-abcd1234')).toBe(path.join(dataDir, 'plugins', 'x-ca', '1.0.0-abcd1234'));
    for (const bad of ['plugins/x-ca/..', 'plugins/x-ca/.', 'plugins/x-ca/1.0.0', '../etc', 'plugins/../../etc/x', '/abs/path', 'plugins/x-ca', 'plugins/X/1', 'plugins/x-ca/1.0.0/../../..']) expect(packageDir(dataDir, bad), bad).toBeNull();
  });

  it('unpacks a missing folder from the stored archive after checking its hash', async () => {
    const archive = fixturePlugin({ id: 'replica-ca' });
    const rel = 'plugins/replica-ca/1.0.0-feedbeef';
    await expect(ensureUnpacked(dataDir, rel, async () => ({ archive, sha256: '0'.repeat(64) }))).rejects.toThrow(/does not match its recorded hash/);
    const dir = await ensureUnpacked(dataDir, rel, async () => ({ archive, sha256: sha(archive) }));
    expect(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).toMatch(/replica-ca/);
    // Present: the archive is not even read.
    expect(await ensureUnpacked(dataDir, rel, async () => { throw new Error('should not load'); })).toBe(dir);
    await expect(ensureUnpacked(dataDir, '../../etc', async () => null)).rejects.toThrow(/not a valid location/);
  });

  it('sweeps folders nothing references, once they are older than the grace period', async () => {
    const keep = 'plugins/replica-ca/1.0.0-feedbeef';
    const orphan = path.join(dataDir, 'plugins', 'gone-ca', '1.0.0-00000000');
    fs.mkdirSync(orphan, { recursive: true });
    fs.mkdirSync(path.join(stagingRoot(dataDir), 'abandoned'), { recursive: true });
    expect(await sweepPackageFolders(dataDir, [keep], 60_000)).toEqual([]);
    const removed = await sweepPackageFolders(dataDir, [keep], -1);
    expect(removed).toContain(orphan);
    expect(removed).toContain(path.join(stagingRoot(dataDir), 'abandoned'));
    expect(fs.existsSync(packageDir(dataDir, keep)!)).toBe(true);
    expect(fs.existsSync(orphan)).toBe(false);
  });
});
