// The applier's metadata: owners per replication.owners, setuid/setgid and file capabilities
// only with their owner, extended attributes and ACLs as exact setters, hard links, holes.
// Runs as root (chown, trusted.* and security.* attributes); skipped otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import { FakeClock } from '../../../shared/clock.ts';
import type { DataRecord, Xattr } from '../../../shared/protocol/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Applier } from '../../../agent/apply/applier.ts';
import type { OwnerLookup, OwnersMode } from '../../../agent/tree/index.ts';
import { ROOT, RecordBuilder, bytes, tmpDir } from './helpers.ts';

const BS = 4096;
const T0 = 1_700_000_000_000;
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('skipping the applier metadata tests: they need root (chown, trusted.* attributes)');

let base: string;
let rootDir: string;

beforeAll(async () => {
  await initHash();
});

beforeEach(() => {
  base = tmpDir('tandem-apply-meta-');
  rootDir = path.join(base, 'root');
  fs.mkdirSync(rootDir);
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** A user database of this node where `alice` is 2001 and `staff` is 3001. */
const users: OwnerLookup = {
  uidOf: (n) => ({ alice: 2001, root: 0 })[n],
  gidOf: (n) => ({ staff: 3001, root: 0 })[n],
};

async function setup(owners: OwnersMode = 'numeric') {
  const manifest = new Manifest([ROOT]);
  const applier = new Applier({ roots: [{ name: ROOT, path: rootDir, exclude: [] }], manifest, blockSize: BS, log: silentLogger(), clock: new FakeClock(T0), owners, users });
  await applier.init();
  const durables: number[] = [];
  return { applier, manifest, durables, run: (records: DataRecord[]) => applier.apply(records, async (seq) => void durables.push(seq)) };
}

const at = (rel: string) => path.join(rootDir, rel);
function ownerMode(rel: string): string {
  const st = fs.lstatSync(at(rel));
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
}
function xattrsOf(rel: string): string[] {
  return execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', at(rel)], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .sort();
}
const X = (name: string, value: string): Xattr => [name, Buffer.from(value)];

describe.skipIf(!isRoot)('applier metadata', () => {
  it('chowns before it chmods: a setuid file keeps its bit with the owner it came with', async () => {
    const { run, manifest, applier } = await setup();
    const b = new RecordBuilder();
    b.content('tool', 'x', BS);
    b.meta('tool', 0o4755, T0, { uid: 65534, gid: 65534, user: 'nobody', group: 'nogroup' });
    b.mkdir('dir', 0o2770, { uid: 1, gid: 1 });
    b.symlink('link', 'tool', { uid: 1, gid: 1 });
    await run(b.records);
    expect(ownerMode('tool')).toBe('65534:65534 4755');
    expect(ownerMode('dir')).toBe('1:1 2770');
    expect(fs.lstatSync(at('link')).uid).toBe(1);
    expect(manifest.get(ROOT, 'tool')).toMatchObject({ uid: 65534, gid: 65534, mode: 0o4755 });
    expect(applier.noticeList()).toEqual([]);
  });

  it('a file changed in place gets the owner and mode of its meta: kept, a new owner with setuid, setuid kept', async () => {
    const { run, manifest, applier } = await setup();
    const first = new RecordBuilder();
    for (const [p, mode, id] of [['same', 0o644, 1], ['moved', 0o4755, 65534], ['tool', 0o4755, 65534]] as const) {
      first.content(p, 'old', BS);
      first.meta(p, mode, T0, { uid: id, gid: id });
    }
    await run(first.records);
    const b = new RecordBuilder(first.records.length + 1);
    for (const p of ['same', 'moved', 'tool']) {
      b.file(p, 3);
      b.write(p, 0, 'new');
    }
    b.meta('same', 0o644, T0 + 1000, { uid: 1, gid: 1 });
    // chown clears setuid: the mode is set again after it.
    b.meta('moved', 0o4755, T0 + 1000, { uid: 1, gid: 1 });
    b.meta('tool', 0o4755, T0 + 1000, { uid: 65534, gid: 65534 });
    await run(b.records);
    expect(['same', 'moved', 'tool'].map(ownerMode)).toEqual(['1:1 644', '1:1 4755', '65534:65534 4755']);
    expect(fs.readFileSync(at('moved'), 'utf8')).toBe('new');
    expect(manifest.get(ROOT, 'moved')).toMatchObject({ uid: 1, gid: 1, mode: 0o4755 });
    expect(applier.noticeList()).toEqual([]);
  });

  it('a file capability set by the meta right after large writes survives them: the meta waits for the writes behind', async () => {
    // A write clears a file's capability (even root's): were the meta to set it while writes are
    // still behind, the next to start would take it away. The blocks come last first: each is a
    // write of its own, one after the other in the thread pool, so some are surely still to start.
    const { run, manifest, applier } = await setup();
    const first = new RecordBuilder();
    first.content('tool', 'old', BS);
    first.meta('tool', 0o755, T0, { uid: 0, gid: 0 });
    await run(first.records);
    const cap = X('security.capability', '\x01\x00\x00\x02\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00');
    const data = bytes(8 << 20, 5);
    const b = new RecordBuilder(first.records.length + 1);
    const block = 256 << 10;
    b.file('tool', data.length);
    for (let off = data.length - block; off >= 0; off -= block) b.write('tool', off, data.subarray(off, off + block));
    b.meta('tool', 0o755, T0 + 1000, { uid: 0, gid: 0, xattrs: [cap] });
    await run(b.records);
    expect(fs.readFileSync(at('tool')).equals(data)).toBe(true);
    expect(xattrsOf('tool')).toEqual(['security.capability=0sAQAAAgAQAAAAAAAAAAAAAAAAAAA=']);
    expect(fs.statSync(at('tool')).mtimeMs).toBe(T0 + 1000);
    expect(manifest.get(ROOT, 'tool')).toMatchObject({ size: data.length, mtimeMs: T0 + 1000, mode: 0o755 });
    expect(applier.noticeList()).toEqual([]);
  });

  it('gives a new file the owner of its record whether or not its creation already did: root, another user, a setgid directory\'s group', async () => {
    const { run, manifest, applier } = await setup();
    const b = new RecordBuilder();
    // The directory's setgid bit gives new files its group (1), not the agent's (0).
    b.mkdir('shared', 0o2775, { uid: 0, gid: 1 });
    b.content('shared/as-root', 'a', BS);
    b.meta('shared/as-root', 0o4750, T0, { uid: 0, gid: 0 });
    b.content('shared/as-dir-group', 'b', BS);
    b.meta('shared/as-dir-group', 0o640, T0, { uid: 0, gid: 1 });
    b.content('plain-root', 'c', BS);
    b.meta('plain-root', 0o4755, T0, { uid: 0, gid: 0 });
    b.content('nobody', 'd', BS);
    b.meta('nobody', 0o600, T0, { uid: 65534, gid: 65534 });
    await run(b.records);
    expect(ownerMode('shared/as-root')).toBe('0:0 4750');
    expect(ownerMode('shared/as-dir-group')).toBe('0:1 640');
    expect(ownerMode('plain-root')).toBe('0:0 4755');
    expect(ownerMode('nobody')).toBe('65534:65534 600');
    expect(manifest.get(ROOT, 'shared/as-root')).toMatchObject({ uid: 0, gid: 0, mode: 0o4750 });
    expect(applier.noticeList()).toEqual([]);
  });

  it('with owners off: the agent keeps the files, and setuid, setgid and file capabilities are cleared with a notice', async () => {
    const { run, applier } = await setup('off');
    const b = new RecordBuilder();
    b.content('tool', 'x', BS);
    b.meta('tool', 0o6755, T0, { uid: 65534, gid: 65534, xattrs: [X('security.capability', '\x01\x00\x00\x02\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'), X('user.keep', 'yes')] });
    b.mkdir('shared', 0o3775, { uid: 1, gid: 1 });
    await run(b.records);
    expect(ownerMode('tool')).toBe('0:0 755');
    expect(xattrsOf('tool')).toEqual(['user.keep="yes"']);
    // A directory's setgid and sticky bits grant nothing: kept.
    expect(ownerMode('shared')).toBe('0:0 3775');
    const n = applier.noticeList().find((x) => x.code === 'TANDEM_ERR_SPECIAL_BITS_CLEARED');
    expect(n?.message).toMatch(/tool: setuid\/setgid bits or file capabilities cleared: replication\.owners is off/);
    expect(applier.noticeList().map((x) => x.code)).not.toContain('TANDEM_ERR_OWNER_UNAPPLIED');
  });

  it('with owners names: maps by name; an unknown name keeps its number, loses setuid, and says so', async () => {
    const { run, applier } = await setup('names');
    const b = new RecordBuilder();
    b.content('mine', 'x', BS);
    b.meta('mine', 0o4750, T0, { uid: 1000, gid: 1000, user: 'alice', group: 'staff' });
    b.content('theirs', 'y', BS);
    b.meta('theirs', 0o4750, T0, { uid: 1001, gid: 1000, user: 'bob', group: 'staff' });
    await run(b.records);
    expect(ownerMode('mine')).toBe('2001:3001 4750');
    expect(ownerMode('theirs')).toBe('1001:3001 750');
    const codes = applier.noticeList().map((x) => x.code);
    expect(codes).toContain('TANDEM_ERR_OWNER_UNAPPLIED');
    expect(codes).toContain('TANDEM_ERR_SPECIAL_BITS_CLEARED');
    expect(applier.noticeList().find((x) => x.code === 'TANDEM_ERR_OWNER_UNAPPLIED')?.message).toMatch(/theirs: user "bob" does not exist here: kept as 1001:3001/);
  });

  it('clears setuid of a record that carries no owner (journaled by an older version): never granted to whoever owns the file here', async () => {
    fs.writeFileSync(at('old'), 'x');
    fs.chownSync(at('old'), 1, 1);
    const { run, applier } = await setup();
    const b = new RecordBuilder();
    b.meta('old', 0o4755, T0);
    await run(b.records);
    expect(ownerMode('old')).toBe('1:1 755');
    expect(applier.noticeList()[0]?.message).toMatch(/no owner \(journaled by an older version\)/);
  });

  it('a new file meant to have no attributes has none: not the default ACL of its directory, nor one a record of the same batch set', async () => {
    fs.mkdirSync(at('plain'));
    fs.mkdirSync(at('inherits'));
    execFileSync('setfacl', ['-m', 'd:u:65534:rx', at('inherits')]);
    const { run } = await setup();
    const b = new RecordBuilder();
    // The first new file where nothing is inherited tells the applier that new files in this
    // root come with no label: later ones are not listed, unless their directory has a default ACL.
    b.content('plain/a', 'a', BS);
    b.meta('plain/a', 0o644, T0, { uid: 0, gid: 0, xattrs: [] });
    b.content('inherits/b', 'b', BS);
    b.meta('inherits/b', 0o644, T0, { uid: 0, gid: 0, xattrs: [] });
    b.content('plain/c', 'c', BS);
    b.meta('plain/c', 0o644, T0, { uid: 0, gid: 0, xattrs: [X('user.was', 'set')] });
    b.meta('plain/c', 0o644, T0, { uid: 0, gid: 0, xattrs: [] });
    await run(b.records);
    // Created, inheriting an access ACL from its directory's default: removed as the record says.
    expect(xattrsOf('inherits/b')).toEqual([]);
    expect(xattrsOf('plain/a')).toEqual([]);
    expect(xattrsOf('plain/c')).toEqual([]);
    expect(ownerMode('inherits/b')).toBe('0:0 644');
  });

  it('makes the extended attributes and ACLs of a file and a directory exactly those of the record', async () => {
    fs.writeFileSync(at('f'), 'x');
    execFileSync('setfattr', ['-n', 'user.stale', '-v', 'old', at('f')]);
    execFileSync('setfattr', ['-n', 'trusted.keep', '-v', 'before', at('f')]);
    const { run, manifest } = await setup();
    // ACLs as a file system stores them: take them from a real file.
    fs.writeFileSync(path.join(base, 'acl-model'), '');
    fs.mkdirSync(path.join(base, 'acl-dir'));
    execFileSync('setfacl', ['-m', 'u:65534:rw', path.join(base, 'acl-model')]);
    execFileSync('setfacl', ['-m', 'd:u:65534:rx', path.join(base, 'acl-dir')]);
    const raw = (f: string, n: string) => execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', n, f]);
    const acl = raw(path.join(base, 'acl-model'), 'system.posix_acl_access');
    const b = new RecordBuilder();
    b.content('f', 'x', BS);
    b.meta('f', 0o664, T0, { uid: 0, gid: 0, xattrs: [['system.posix_acl_access', acl], X('trusted.keep', 'after'), X('user.new', 'v')] });
    b.mkdir('d', 0o755, { uid: 0, gid: 0, xattrs: [['system.posix_acl_default', raw(path.join(base, 'acl-dir'), 'system.posix_acl_default')]] });
    await run(b.records);
    expect(xattrsOf('f')).toEqual([`system.posix_acl_access=0s${acl.toString('base64')}`, 'trusted.keep="after"', 'user.new="v"']);
    expect(execFileSync('getfacl', ['-p', '--omit-header', at('f')], { encoding: 'utf8' })).toMatch(/user:nobody:rw-/);
    expect(execFileSync('getfacl', ['-p', '--omit-header', at('d')], { encoding: 'utf8' })).toMatch(/default:user:nobody:r-x/);
    // The mode comes last and wins over the ACL's mask.
    expect(ownerMode('f')).toBe('0:0 664');
    const e = manifest.get(ROOT, 'f');
    expect(e?.kind === 'file' ? e.xattrHash?.length : undefined).toBe(8);
  });

  it('with owners names: ACL entries follow their names, and one whose name is unknown here is dropped, never granted by number', async () => {
    // The active's ACLs: user 1001 (alice there) rwx, 1002 (carol, unknown here) r; a default
    // ACL giving 1001 r-x. Here alice is 2001 and 1001 is whoever holds it.
    const f = path.join(base, 'acl-src');
    const d = path.join(base, 'acl-src-dir');
    fs.writeFileSync(f, '');
    fs.mkdirSync(d);
    execFileSync('setfacl', ['-m', 'u:1001:rwx,u:1002:r', f]);
    execFileSync('setfacl', ['-m', 'd:u:1001:rx,d:g:1002:r', d]);
    const raw = (p: string, n: string) => execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', n, p]);
    const aclNames = { users: [[1001, 'alice'], [1002, 'carol']] as [number, string][], groups: [[1002, 'staff']] as [number, string][] };
    const { run, applier } = await setup('names');
    const b = new RecordBuilder();
    b.content('f', 'x', BS);
    b.meta('f', 0o640, T0, { uid: 0, gid: 0, user: 'root', group: 'root', xattrs: [['system.posix_acl_access', raw(f, 'system.posix_acl_access')]], aclNames });
    b.mkdir('d', 0o755, { uid: 0, gid: 0, user: 'root', group: 'root', xattrs: [['system.posix_acl_default', raw(d, 'system.posix_acl_default')]], aclNames });
    await run(b.records);
    const facl = (rel: string) => execFileSync('getfacl', ['-n', '-p', '--omit-header', at(rel)], { encoding: 'utf8' });
    expect(facl('f')).toMatch(/^user:2001:rwx(?=\s|$)/m);
    expect(facl('f')).not.toMatch(/user:100[12]:/);
    expect(facl('f')).toMatch(/^mask::/m);
    expect(facl('d')).toMatch(/^default:user:2001:r-x(?=\s|$)/m);
    expect(facl('d')).toMatch(/^default:group:3001:r--(?=\s|$)/m);
    expect(facl('d')).not.toMatch(/:100[12]:/);
    const n = applier.noticeList().find((x) => x.code === 'TANDEM_ERR_ACL_ENTRY_DROPPED');
    expect(n?.message).toMatch(/user "carol" does not exist here/);
  });

  it('with owners numeric: ACL entries keep their ids as they came', async () => {
    const f = path.join(base, 'acl-src');
    fs.writeFileSync(f, '');
    execFileSync('setfacl', ['-m', 'u:1001:rwx', f]);
    const acl = execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'system.posix_acl_access', f]);
    const { run, applier } = await setup('numeric');
    const b = new RecordBuilder();
    b.content('f', 'x', BS);
    b.meta('f', 0o640, T0, { uid: 0, gid: 0, xattrs: [['system.posix_acl_access', acl]], aclNames: { users: [[1001, 'alice']] } });
    await run(b.records);
    expect(execFileSync('getfacl', ['-n', '-p', '--omit-header', at('f')], { encoding: 'utf8' })).toMatch(/^user:1001:rwx(?=\s|$)/m);
    expect(applier.noticeList().map((x) => x.code)).not.toContain('TANDEM_ERR_ACL_ENTRY_DROPPED');
  });

  it('makes a second name a hard link of the first, replacing what was there, and skips one whose first name is gone', async () => {
    const { run, manifest } = await setup();
    const b = new RecordBuilder();
    b.content('a', bytes(BS + 10, 1), BS);
    b.content('d/b', 'something else', BS);
    b.hardlink('d/b', 'a');
    b.hardlink('c', 'a');
    b.hardlink('c', 'a');
    b.hardlink('orphan', 'missing');
    await run(b.records);
    const ino = fs.statSync(at('a')).ino;
    expect([fs.statSync(at('d/b')).ino, fs.statSync(at('c')).ino]).toEqual([ino, ino]);
    expect(fs.statSync(at('a')).nlink).toBe(3);
    expect(fs.existsSync(at('orphan'))).toBe(false);
    expect(manifest.pathsForIno(ROOT, ino).sort()).toEqual(['a', 'c', 'd/b']);
    // A write through one name is a write to all.
    const w = new RecordBuilder(100);
    w.write('c', 0, 'CHANGED');
    await run(w.records);
    expect(fs.readFileSync(at('a')).subarray(0, 7).toString()).toBe('CHANGED');
    expect(manifest.get(ROOT, 'd/b')).toEqual(manifest.get(ROOT, 'a') && { ...manifest.get(ROOT, 'a')!, blocks: (manifest.get(ROOT, 'd/b') as { blocks: Buffer }).blocks });
  });

  it('leaves a hole where zeros reach the end of a file, and writes zeros inside one', async () => {
    const { run } = await setup();
    const big = 256 * BS;
    const b = new RecordBuilder();
    b.file('sparse', big);
    b.write('sparse', 10 * BS, bytes(BS, 5));
    b.write('sparse', big - BS, bytes(BS, 6));
    await run(b.records);
    expect(fs.statSync(at('sparse')).blocks * 512).toBeLessThanOrEqual(2 * BS + 8192);
    const h = new RecordBuilder(100);
    h.hole('sparse', 10 * BS, BS); // inside: zeros written
    h.hole('sparse', big - BS, BS); // at the end: cut and extended, allocated no more
    await run(h.records);
    const data = fs.readFileSync(at('sparse'));
    expect(data.length).toBe(big);
    expect(data.every((x) => x === 0)).toBe(true);
    expect(fs.statSync(at('sparse')).blocks * 512).toBeLessThanOrEqual(BS + 8192);
  });
});
