import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { tarball } from '../../../../test/plugins/install-fixtures.js';
import { ARCHIVE_LIMITS, readPluginArchive, writePackageFiles } from './archive.js';

const refused = async (tgz: Buffer, pattern: RegExp, limits = ARCHIVE_LIMITS) => {
  await expect(readPluginArchive(tgz, limits)).rejects.toThrow(pattern);
};

describe('plugin archive reading (nothing touches the disk)', () => {
  it('reads an npm-pack-shaped archive into package-relative files', async () => {
    const files = await readPluginArchive(tarball([
      { path: 'package/', type: 'Directory' },
      { path: 'package/package.json', body: '{"name":"x"}' },
      { path: 'package/dist/plugin.js', body: 'export default {}' },
    ]));
    expect([...files.keys()].sort()).toEqual(['dist/plugin.js', 'package.json']);
    expect(files.get('package.json')!.toString()).toBe('{"name":"x"}');
  });

  it('refuses anything that is not a gzip tar', async () => {
    await refused(Buffer.from('PK\u0003\u0004 a zip file, not a tgz'), /not a gzip-compressed tar archive/);
    await refused(zlib.gzipSync(Buffer.from('x'.repeat(700))), /tar data is damaged|archive is empty/);
    await refused(tarball([]), /archive is empty|tar data is damaged/);
  });

  it('refuses paths that could leave the package folder', async () => {
    await refused(tarball([{ path: '/etc/cron.d/evil', body: 'x' }]), /absolute path/);
    await refused(tarball([{ path: 'package/../../evil.js', body: 'x' }]), /"\.\." path segment/);
    await refused(tarball([{ path: 'package/dist/../../evil.js', body: 'x' }]), /"\.\." path segment/);
    await refused(tarball([{ path: 'other/package.json', body: '{}' }]), /outside the package\/ folder/);
    await refused(tarball([{ path: 'package\\..\\evil', body: 'x' }]), /backslashes/);
  });

  it('refuses links, devices and FIFOs, even harmless-looking ones', async () => {
    await refused(tarball([{ path: 'package/escape', type: 'SymbolicLink', linkpath: '/etc/passwd' }]), /is a SymbolicLink; only plain files and folders/);
    await refused(tarball([{ path: 'package/same', type: 'SymbolicLink', linkpath: 'package.json' }]), /SymbolicLink/);
    await refused(tarball([{ path: 'package/hard', type: 'Link', linkpath: '/etc/shadow' }]), /is a Link/);
    await refused(tarball([{ path: 'package/tty', type: 'CharacterDevice' }]), /is a CharacterDevice/);
    await refused(tarball([{ path: 'package/disk', type: 'BlockDevice' }]), /is a BlockDevice/);
    await refused(tarball([{ path: 'package/pipe', type: 'FIFO' }]), /is a FIFO/);
  });

  it('refuses duplicate names and files that are also folders', async () => {
    await refused(tarball([{ path: 'package/a.js', body: '1' }, { path: 'package/a.js', body: '2' }]), /appears more than once/);
    await refused(tarball([{ path: 'package/a', body: '1' }, { path: 'package/a/b.js', body: '2' }]), /inside a file/);
  });

  it('stops tar bombs: too many entries, too many bytes, too deep', async () => {
    const small = { ...ARCHIVE_LIMITS, maxEntries: 5, maxUnpackedBytes: 4096, maxDepth: 3 };
    await refused(tarball(Array.from({ length: 6 }, (_, i) => ({ path: `package/f${i}`, body: 'x' }))), /more than 5 entries/, small);
    await refused(tarball([{ path: 'package/big', body: Buffer.alloc(5000) }]), /unpacks to more than 4096 bytes/, small);
    await refused(tarball([{ path: 'package/a/b/c/d.js', body: 'x' }]), /nested more than 3 folders deep/, small);
    // A highly compressible body is stopped while decompressing, before any tar parsing.
    const bomb = tarball([{ path: 'package/zeros', body: Buffer.alloc(2 * 1024 * 1024) }]);
    expect(bomb.length).toBeLessThan(10_000);
    await refused(bomb, /unpacks to more than 4096 bytes/, small);
    await refused(Buffer.alloc(ARCHIVE_LIMITS.maxArchiveBytes + 1, 0x1f), /larger than/);
  });

  describe('writing files', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-archive-'));
    afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

    it('creates only plain files and folders under a new folder, and never overwrites', async () => {
      const dest = path.join(root, 'pkg');
      await writePackageFiles(new Map([['package.json', Buffer.from('{}')], ['dist/plugin.js', Buffer.from('x')]]), dest);
      expect(fs.readFileSync(path.join(dest, 'dist/plugin.js'), 'utf8')).toBe('x');
      expect(fs.statSync(path.join(dest, 'package.json')).mode & 0o777).toBe(0o644);
      await expect(writePackageFiles(new Map([['package.json', Buffer.from('{}')]]), dest)).rejects.toThrow(/EEXIST/);
      await expect(writePackageFiles(new Map([['../escape.js', Buffer.from('x')]]), path.join(root, 'other'))).rejects.toThrow(/leaves the package folder/);
      expect(fs.existsSync(path.join(root, 'escape.js'))).toBe(false);
    });
  });
});
