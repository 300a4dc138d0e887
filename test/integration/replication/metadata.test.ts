// A faithful copy between two real agents (issue 8, item 1): owners, groups and modes of a tree
// with several users; setuid and setgid only with their owner (a setuid file run by an
// unprivileged user on the passive never runs as root); replication.owners off and names;
// hard links as links; a sparse file stays sparse; extended attributes and ACLs arrive. Needs
// root (chown, setpriv, unshare, mount); skipped with a message otherwise.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll } from '../../helpers/processes.ts';
import { tandem } from '../../helpers/cli.ts';
import { TestPair, type NodeName } from '../../helpers/pair.ts';
import { digestTree, treeDiff } from '../../helpers/tree-hash.ts';

const DAEMON = 1; // uid and gid of Debian's `daemon`: an unprivileged user that exists everywhere
const NOBODY = 65534;
const KiB = 1024;
const MiB = 1024 * KiB;

function problem(): string | undefined {
  if (process.getuid?.() !== 0) return 'the tests do not run as root (chown, setpriv, unshare)';
  for (const tool of ['setpriv', 'unshare', 'setfattr', 'getfattr', 'setfacl', 'getfacl', 'du']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return undefined;
}
const skip = problem();
if (skip !== undefined) console.warn(`skipping the metadata replication tests: ${skip}`);

let pair: TestPair | undefined;

afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

/** Every directory from the pair's temp dir down to both data dirs traversable, so other users can run what is there. */
function traversable(p: TestPair): void {
  for (const n of ['alpha', 'beta'] as NodeName[]) {
    for (let d = p.data(n); d.startsWith(p.dir); d = path.dirname(d)) fs.chmodSync(d, 0o755);
  }
}

/** Runs `file args` as uid/gid `id` with no supplementary groups; its standard output, trimmed. */
function runAs(id: number, file: string, args: string[]): string {
  return execFileSync('setpriv', [`--reuid=${id}`, `--regid=${id}`, '--clear-groups', file, ...args], { encoding: 'utf8' }).trim();
}

function owner(file: string): string {
  const st = fs.lstatSync(file);
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
}

function put(file: string, content: string | Buffer, uid: number, gid: number, mode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  fs.chownSync(file, uid, gid);
  fs.chmodSync(file, mode);
}

/** A copy of /usr/bin/id owned by `uid:gid` with `mode` (4755: it prints the owner's uid as euid). */
function idCopy(file: string, uid: number, gid: number, mode: number): void {
  fs.copyFileSync('/usr/bin/id', file);
  fs.chownSync(file, uid, gid);
  fs.chmodSync(file, mode);
}

function alarmCodes(s: { alarms: { code: string }[] }): string[] {
  return s.alarms.map((a) => a.code);
}

/** Both nodes in sync and capture idle (without reading the trees, for a 1 GiB file). */
async function inSync(p: TestPair): Promise<void> {
  await p.waitFor('alpha', 'in sync, nothing pending', (s) => s.replication.inSync && s.capture?.pendingPaths === 0, 60_000);
  await p.waitFor('beta', 'in sync', (s) => s.replication.inSync, 60_000);
}

const noFailover = (doc: Record<string, any>) => (doc.failover = { auto: false });

/** A pair whose nodes map owners by name (replication.owners: names). */
function namesPair(): Promise<TestPair> {
  return TestPair.create({
    emptyData: true,
    config: (doc) => {
      noFailover(doc);
      doc.replication = { owners: 'names' };
    },
  });
}

/**
 * A wrapper that runs the passive with its own user database: these passwd and group files
 * bind-mounted over /etc/passwd and /etc/group in a mount namespace of its own.
 */
function ownUserDb(p: TestPair, passwd: string, group: string): string[] {
  const etc = path.join(p.dir, 'beta-etc');
  fs.mkdirSync(etc);
  fs.writeFileSync(path.join(etc, 'passwd'), passwd);
  fs.writeFileSync(path.join(etc, 'group'), group);
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"', 'sh', path.join(etc, 'passwd'), path.join(etc, 'group')];
}

describe.skipIf(skip !== undefined)('faithful metadata between two agents', () => {
  it('gives the passive the owners, groups and modes of a tree with several users, and a setuid file there never runs as root', async () => {
    pair = await TestPair.create({ emptyData: true, config: noFailover });
    const p = pair;
    traversable(p);
    await p.startBoth();
    await p.waitIdentical();
    const a = (rel: string) => p.data('alpha', rel);
    fs.mkdirSync(a('users/daemon'), { recursive: true });
    fs.chownSync(a('users/daemon'), DAEMON, DAEMON);
    fs.chmodSync(a('users/daemon'), 0o750);
    fs.mkdirSync(a('users/nobody'));
    fs.chownSync(a('users/nobody'), NOBODY, NOBODY);
    fs.chmodSync(a('users/nobody'), 0o700);
    fs.mkdirSync(a('shared'));
    fs.chownSync(a('shared'), 0, DAEMON);
    fs.chmodSync(a('shared'), 0o2775);
    fs.mkdirSync(a('tmp'));
    fs.chmodSync(a('tmp'), 0o1777);
    put(a('users/daemon/notes'), 'daemon only', DAEMON, DAEMON, 0o640);
    put(a('users/nobody/secret'), 'nobody only', NOBODY, NOBODY, 0o600);
    put(a('shared/doc'), 'group writable', 0, DAEMON, 0o664);
    idCopy(a('whoami-nobody'), NOBODY, NOBODY, 0o4755);
    idCopy(a('whoami-group'), 0, NOBODY, 0o2755);
    fs.symlinkSync('users/daemon/notes', a('link-of-daemon'));
    fs.lchownSync(a('link-of-daemon'), DAEMON, DAEMON);
    // On the active, the setuid copy runs as its owner.
    expect(runAs(DAEMON, a('whoami-nobody'), ['-u'])).toBe(String(NOBODY));
    await p.waitIdentical();

    const b = (rel: string) => p.data('beta', rel);
    for (const rel of ['users/daemon', 'users/nobody', 'shared', 'tmp', 'users/daemon/notes', 'users/nobody/secret', 'shared/doc', 'whoami-nobody', 'whoami-group', 'link-of-daemon']) {
      expect({ rel, owner: owner(b(rel)) }).toEqual({ rel, owner: owner(a(rel)) });
    }
    expect(owner(b('whoami-nobody'))).toBe(`${NOBODY}:${NOBODY} 4755`);
    // Run by an unprivileged user on the passive: the owner's identity, never root's.
    expect(runAs(DAEMON, b('whoami-nobody'), ['-u'])).toBe(String(NOBODY));
    expect(runAs(DAEMON, b('whoami-group'), ['-g'])).toBe(String(NOBODY));
    expect((await p.status('beta')).alarms).toEqual([]);
    expect((await p.status('alpha')).alarms).toEqual([]);

    // An owner changed alone (chown moves only the ctime) travels too.
    fs.chownSync(a('shared/doc'), NOBODY, DAEMON);
    await p.waitIdentical();
    expect(owner(b('shared/doc'))).toBe(`${NOBODY}:${DAEMON} 664`);
  });

  it('with replication.owners: off, gives files to the agent and clears setuid and setgid with an alarm', async () => {
    pair = await TestPair.create({
      emptyData: true,
      config: (doc, node) => {
        noFailover(doc);
        if (node === 'beta') doc.replication = { owners: 'off' };
      },
    });
    const p = pair;
    traversable(p);
    await p.startBoth();
    idCopy(p.data('alpha', 'whoami-nobody'), NOBODY, NOBODY, 0o4755);
    put(p.data('alpha', 'plain'), 'plain', DAEMON, DAEMON, 0o640);
    const beta = await p.waitFor('beta', 'the bits-cleared alarm', (s) => alarmCodes(s).includes('TANDEM_ERR_SPECIAL_BITS_CLEARED'));
    expect(beta.alarms.find((x) => x.code === 'TANDEM_ERR_SPECIAL_BITS_CLEARED')?.message).toMatch(/whoami-nobody.*replication\.owners is off/);
    await inSync(p);
    expect(owner(p.data('beta', 'whoami-nobody'))).toBe('0:0 755');
    expect(owner(p.data('beta', 'plain'))).toBe('0:0 640');
    // Run by daemon it is daemon: neither the owner's identity nor root's.
    expect(runAs(DAEMON, p.data('beta', 'whoami-nobody'), ['-u'])).toBe(String(DAEMON));
    expect(fs.readFileSync(p.data('beta', 'whoami-nobody')).equals(fs.readFileSync('/usr/bin/id'))).toBe(true);
  });

  it('with replication.owners: names, maps owners by name through the passive user database, and a setuid file whose owner has no name loses the bit', async () => {
    pair = await namesPair();
    const p = pair;
    traversable(p);
    // The passive's own user database: daemon is 3001 there, and has a group of that id.
    const passwd = fs.readFileSync('/etc/passwd', 'utf8').replace(/^daemon:x:1:1:/m, 'daemon:x:3001:3001:');
    const group = fs.readFileSync('/etc/group', 'utf8').replace(/^daemon:x:1:/m, 'daemon:x:3001:');
    const ownEtc = ownUserDb(p, passwd, group);
    await Promise.all([p.start('alpha'), p.start('beta', { wrap: ownEtc })]);
    idCopy(p.data('alpha', 'whoami-daemon'), DAEMON, DAEMON, 0o4755);
    put(p.data('alpha', 'no-name'), 'owned by an id without a name', 4242, 4242, 0o4755);
    const beta = await p.waitFor('beta', 'the unknown-owner alarms', (s) => alarmCodes(s).includes('TANDEM_ERR_SPECIAL_BITS_CLEARED') && alarmCodes(s).includes('TANDEM_ERR_OWNER_UNAPPLIED'));
    expect(beta.alarms.find((x) => x.code === 'TANDEM_ERR_OWNER_UNAPPLIED')?.message).toMatch(/no-name: uid 4242 has no name on the active/);
    await inSync(p);
    expect(owner(p.data('beta', 'whoami-daemon'))).toBe('3001:3001 4755');
    expect(runAs(DAEMON, p.data('beta', 'whoami-daemon'), ['-u'])).toBe('3001');
    expect(owner(p.data('beta', 'no-name'))).toBe('4242:4242 755');
    // Verify compares in the passive's terms: daemon by name is no difference; the cleared bit is.
    const r = await tandem(['verify', '-c', p.node('alpha').config, '--json']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(4);
    expect(JSON.parse(r.stdout).details).toEqual([{ path: 'data/no-name', what: 'mode', blocks: 0, repaired: false }]);
  });

  it('with replication.owners: names, ACL entries follow their names: the passive gives daemon its own id, never the stranger holding the old one, and drops a user it lacks', async () => {
    pair = await namesPair();
    const p = pair;
    // The passive's user database: daemon is 3001 there, uid and gid 1 belong to "stranger",
    // and there is no bin (uid 2) at all.
    const passwd = fs
      .readFileSync('/etc/passwd', 'utf8')
      .replace(/^daemon:x:1:1:/m, 'daemon:x:3001:3001:')
      .replace(/^bin:x:2:2:.*\n/m, '')
      .concat('stranger:x:1:1::/nonexistent:/usr/sbin/nologin\n');
    const group = fs.readFileSync('/etc/group', 'utf8').replace(/^daemon:x:1:/m, 'daemon:x:3001:').concat('stranger:x:1:\n');
    const ownEtc = ownUserDb(p, passwd, group);
    const a = (rel: string) => p.data('alpha', rel);
    const b = (rel: string) => p.data('beta', rel);
    // A directory there before the first synchronisation, the rest captured as they change.
    fs.mkdirSync(a('shared'));
    execFileSync('setfacl', ['-m', 'd:u:daemon:rwx,d:g:daemon:r,u:daemon:rwx,g:daemon:r', a('shared')]);
    await Promise.all([p.start('alpha'), p.start('beta', { wrap: ownEtc })]);
    fs.writeFileSync(a('file'), 'daemon may write this');
    execFileSync('setfacl', ['-m', 'u:daemon:rwx,g:daemon:r', a('file')]);
    fs.mkdirSync(a('later'));
    execFileSync('setfacl', ['-m', 'd:u:daemon:rx', a('later')]);
    fs.writeFileSync(a('lacking'), 'bin may read this');
    execFileSync('setfacl', ['-m', 'u:bin:r,u:daemon:r', a('lacking')]);
    const beta = await p.waitFor('beta', 'the dropped-entry alarm', (s) => alarmCodes(s).includes('TANDEM_ERR_ACL_ENTRY_DROPPED'), 60_000);
    expect(beta.alarms.find((x) => x.code === 'TANDEM_ERR_ACL_ENTRY_DROPPED')?.message).toMatch(/lacking: ACL entries dropped: user "bin" does not exist here/);
    await inSync(p);
    const acl = (f: string) => execFileSync('getfacl', ['-n', '-p', '--omit-header', f], { encoding: 'utf8' });
    for (const rel of ['file', 'shared']) {
      expect(acl(b(rel))).toMatch(/^user:3001:rwx/m);
      expect(acl(b(rel))).toMatch(/^group:3001:r--/m);
      expect(acl(b(rel))).not.toMatch(/:1:/);
    }
    expect(acl(b('shared'))).toMatch(/^default:user:3001:rwx/m);
    expect(acl(b('shared'))).toMatch(/^default:group:3001:r--/m);
    expect(acl(b('later'))).toMatch(/^default:user:3001:r-x/m);
    expect(acl(b('later'))).not.toMatch(/:1:/);
    // bin's entry is absent (uid 2 is nobody's here, but it would be whoever came to hold it), daemon's kept.
    expect(acl(b('lacking'))).not.toMatch(/user:2:/);
    expect(acl(b('lacking'))).toMatch(/^user:3001:r--/m);
    expect(acl(b('lacking'))).toMatch(/^mask::/m);
    // Verify compares ACLs by name: the mapped ones are no difference; the one that lost an entry is.
    const r = await tandem(['verify', '-c', p.node('alpha').config, '--json']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(4);
    expect(JSON.parse(r.stdout).details.map((d: { path: string; what: string }) => `${d.path} ${d.what}`)).toEqual(['data/lacking xattrs']);
  });

  it('keeps hard links as links, a sparse file sparse, and extended attributes and ACLs', async () => {
    pair = await TestPair.create({ emptyData: true, config: noFailover });
    const p = pair;
    await p.startBoth();
    await p.waitIdentical();
    const a = (rel: string) => p.data('alpha', rel);
    const b = (rel: string) => p.data('beta', rel);
    fs.writeFileSync(a('f1'), crypto.randomBytes(200 * KiB));
    fs.linkSync(a('f1'), a('f2'));
    fs.mkdirSync(a('d'));
    fs.linkSync(a('f1'), a('d/f3'));
    execFileSync('setfattr', ['-n', 'user.tandem', '-v', 'hello', a('f1')]);
    execFileSync('setfattr', ['-n', 'user.empty', a('d')]);
    execFileSync('setfacl', ['-m', `u:${NOBODY}:rw`, a('f1')]);
    execFileSync('setfacl', ['-m', `d:u:${NOBODY}:rx,u:${NOBODY}:rx`, a('d')]);
    await p.waitIdentical();
    const ino = fs.statSync(b('f1')).ino;
    expect([fs.statSync(b('f2')).ino, fs.statSync(b('d/f3')).ino]).toEqual([ino, ino]);
    expect(fs.statSync(b('f1')).nlink).toBe(3);
    const attrs = (f: string) => execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'hex', f], { encoding: 'utf8' }).split('\n').slice(1).join('\n');
    const acl = (f: string) => execFileSync('getfacl', ['--absolute-names', '-p', f], { encoding: 'utf8' }).split('\n').slice(1).join('\n');
    for (const rel of ['f1', 'f2', 'd/f3', 'd']) {
      expect(attrs(b(rel))).toBe(attrs(a(rel)));
      expect(acl(b(rel))).toBe(acl(a(rel)));
    }
    expect(attrs(b('f1'))).toMatch(/user\.tandem=0x68656c6c6f/);
    expect(acl(b('d'))).toMatch(/default:user:nobody:r-x/);

    // A name given a new inode of its own (a save by rename) stops sharing on the passive too.
    fs.writeFileSync(a('f2.tmp'), 'a content of its own');
    fs.renameSync(a('f2.tmp'), a('f2'));
    await p.waitIdentical();
    expect(fs.statSync(b('f2')).ino).not.toBe(fs.statSync(b('f1')).ino);
    expect(fs.statSync(b('f1')).nlink).toBe(2);

    // A 1 GiB file with 1 MiB of data in its middle: what travels and what the passive
    // allocates is that MiB, not the gigabyte.
    const before = (await p.status('alpha')).channel.bytesOut;
    fs.writeFileSync(a('sparse'), '');
    fs.truncateSync(a('sparse'), 1024 * MiB);
    const fd = fs.openSync(a('sparse'), 'r+');
    fs.writeSync(fd, crypto.randomBytes(MiB), 0, MiB, 512 * MiB);
    fs.closeSync(fd);
    await p.waitFor('beta', 'the sparse file', () => fs.existsSync(b('sparse')) && fs.statSync(b('sparse')).size === 1024 * MiB, 60_000);
    await inSync(p);
    const sent = (await p.status('alpha')).channel.bytesOut - before;
    const allocated = (f: string) => fs.statSync(f).blocks * 512;
    expect(allocated(b('sparse'))).toBeLessThan(4 * MiB);
    expect(allocated(b('sparse'))).toBeLessThanOrEqual(allocated(a('sparse')) + MiB);
    expect(sent).toBeLessThan(8 * MiB);
    const du = (f: string) => Number(execFileSync('du', ['-k', f], { encoding: 'utf8' }).split('\t')[0]);
    expect(du(b('sparse'))).toBeLessThan(4096);
    expect(sameContent(a('sparse'), b('sparse'))).toBe(true);
    fs.rmSync(a('sparse'));
    await p.waitIdentical();

    const v = await tandem(['verify', '-c', p.node('alpha').config, '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).differences).toBe(0);
    expect(treeDiff(digestTree(p.data('alpha')), digestTree(p.data('beta')))).toBe('');
  });
});

/** Two files have the same bytes (read in 8 MiB chunks: holes read fast). */
function sameContent(x: string, y: string): boolean {
  const fx = fs.openSync(x, 'r');
  const fy = fs.openSync(y, 'r');
  try {
    const bx = Buffer.alloc(8 * MiB);
    const by = Buffer.alloc(8 * MiB);
    for (let off = 0; ; off += bx.length) {
      const nx = fs.readSync(fx, bx, 0, bx.length, off);
      const ny = fs.readSync(fy, by, 0, by.length, off);
      if (nx !== ny || !bx.subarray(0, nx).equals(by.subarray(0, ny))) return false;
      if (nx === 0) return true;
    }
  } finally {
    fs.closeSync(fx);
    fs.closeSync(fy);
  }
}
