import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsRefused, readDeclaredFile, resolveDeclaredPath, writeDeclaredFile } from './agent-fs.js';

describe('agent fs capability checks', () => {
  let root: string;
  let granted: string;
  let outside: string;
  beforeAll(() => {
    root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'certctl-fs-')));
    granted = path.join(root, 'granted');
    outside = path.join(root, 'outside');
    fs.mkdirSync(path.join(granted, 'sub'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(granted, 'cert.pem'), 'CERT');
    fs.writeFileSync(path.join(outside, 'secret.key'), 'KEY');
    fs.symlinkSync(path.join(outside, 'secret.key'), path.join(granted, 'link-out'));
    fs.symlinkSync(path.join(granted, 'cert.pem'), path.join(granted, 'link-in'));
    fs.symlinkSync(outside, path.join(granted, 'dir-out'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const refused = async (p: Promise<unknown>, text: string) => {
    await expect(p).rejects.toBeInstanceOf(FsRefused);
    await expect(p).rejects.toThrow(text);
  };

  it('allows files at or below a granted path', async () => {
    expect(await readDeclaredFile(path.join(granted, 'cert.pem'), [granted])).toBe('CERT');
    expect(await resolveDeclaredPath(path.join(granted, 'sub', 'new.pem'), [granted], { forWrite: true })).toBe(path.join(granted, 'sub', 'new.pem'));
    // A granted file grants exactly that file.
    expect(await readDeclaredFile(path.join(granted, 'cert.pem'), [path.join(granted, 'cert.pem')])).toBe('CERT');
    await refused(resolveDeclaredPath(path.join(granted, 'sub', 'x'), [path.join(granted, 'cert.pem')], { forWrite: true }), 'outside the granted paths');
  });

  it('refuses relative paths, .. segments and paths outside', async () => {
    await refused(resolveDeclaredPath('granted/cert.pem', [granted], { forWrite: false }), 'must be absolute');
    await refused(resolveDeclaredPath(`${granted}/../outside/secret.key`, [granted], { forWrite: false }), 'must not contain ".."');
    await refused(resolveDeclaredPath(path.join(outside, 'secret.key'), [granted], { forWrite: false }), 'outside the granted paths');
    await refused(resolveDeclaredPath(`${granted}\0x`, [granted], { forWrite: false }), 'NUL');
    // A sibling whose name starts like the granted folder is not inside it.
    fs.mkdirSync(`${granted}-evil`, { recursive: true });
    await refused(resolveDeclaredPath(path.join(`${granted}-evil`, 'x'), [granted], { forWrite: true }), 'outside the granted paths');
  });

  it('follows symlinks to judge where a path really leads', async () => {
    await refused(readDeclaredFile(path.join(granted, 'link-out'), [granted]), 'resolves to');
    await refused(writeDeclaredFile(path.join(granted, 'dir-out', 'planted'), 'x', [granted]), 'outside the granted paths');
    expect(fs.existsSync(path.join(outside, 'planted'))).toBe(false);
    expect(await readDeclaredFile(path.join(granted, 'link-in'), [granted])).toBe('CERT');
  });

  it('writes atomically with the requested mode, replacing the real target of an inside symlink', async () => {
    const target = path.join(granted, 'sub', 'out.pem');
    expect(await writeDeclaredFile(target, 'NEW', [granted], { mode: 0o640 })).toBe(target);
    expect(fs.readFileSync(target, 'utf8')).toBe('NEW');
    expect(fs.statSync(target).mode & 0o777).toBe(0o640);
    await writeDeclaredFile(path.join(granted, 'link-in'), 'VIA LINK', [granted]);
    expect(fs.lstatSync(path.join(granted, 'link-in')).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(path.join(granted, 'cert.pem'), 'utf8')).toBe('VIA LINK');
    expect(fs.readdirSync(path.join(granted, 'sub')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await refused(writeDeclaredFile(target, 'x', [granted], { mode: 0o4755 }), 'mode must be');
    await refused(writeDeclaredFile(target, 'x'.repeat(20), [granted], { maxBytes: 10 }), 'over the 10-byte write limit');
  });

  it('grants nothing when no granted path or its directory exists; a missing granted file grants only itself', async () => {
    await refused(resolveDeclaredPath(path.join(granted, 'cert.pem'), [path.join(root, 'no-dir', 'missing')], { forWrite: false }), 'granted no file paths');
    await refused(resolveDeclaredPath(path.join(granted, 'cert.pem'), [path.join(root, 'missing')], { forWrite: false }), 'outside the granted paths');
    const future = path.join(granted, 'sub', 'first-deploy.pem');
    expect(await writeDeclaredFile(future, 'FIRST', [future])).toBe(future);
    await expect(readDeclaredFile(path.join(granted, 'sub', 'not-yet.pem'), [path.join(granted, 'sub', 'not-yet.pem')])).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
