// A snapshot and its list of changes from one btrfs child (a shell running the snapshot, then
// the send), on a real btrfs of the test's own: the list is the one a separate send gives, a
// failed snapshot throws and leaves nothing, a failed list leaves a good snapshot, and paths
// are arguments, never shell text. Needs root and btrfs-progs.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Btrfs, findBtrfs } from '../../../agent/points/index.ts';
import { systemClock } from '../../../shared/clock.ts';
import { TandemError } from '../../../shared/errors.ts';
import { btrfsUnavailable, cleanupLoops, makeLoopFs, makeSubvolume } from '../../helpers/btrfs-loop.ts';

const skip = btrfsUnavailable();
if (skip !== undefined) console.warn(`skipping the btrfs commands' tests: ${skip}`);

afterEach(() => cleanupLoops());

const BS = 64 * 1024;

describe.skipIf(skip !== undefined)('Btrfs.snapshotAndChanges', () => {
  it('takes the snapshot and lists exactly what a separate send lists, even with shell characters in the paths', async () => {
    const lfs = makeLoopFs({ sizeMiB: 256, tag: 'snapsend' });
    // A name a shell would run if it were ever part of the program text.
    const root = makeSubvolume(lfs, "da ta;$(touch pwned)'`touch pwned2`");
    const snaps = path.join(lfs.dir, 'snaps $HOME');
    fs.mkdirSync(snaps);
    const btrfs = new Btrfs({ bin: findBtrfs()!, clock: systemClock });
    fs.writeFileSync(path.join(root, 'kept'), Buffer.alloc(3 * BS, 1));
    fs.writeFileSync(path.join(root, 'gone'), 'x');
    await btrfs.snapshot(root, path.join(snaps, '1'));
    const fd = fs.openSync(path.join(root, 'kept'), 'r+');
    fs.writeSync(fd, Buffer.alloc(100, 2), 0, 100, BS + 10);
    fs.closeSync(fd);
    fs.unlinkSync(path.join(root, 'gone'));
    fs.writeFileSync(path.join(root, 'new'), 'n');
    const r = await btrfs.snapshotAndChanges(root, path.join(snaps, '2'), path.join(snaps, '1'), BS);
    expect(fs.statSync(path.join(snaps, '2')).ino).toBe(256);
    expect(fs.readFileSync(path.join(snaps, '2', 'new'), 'utf8')).toBe('n');
    expect(r.changes).not.toBeInstanceOf(Error);
    const separate = await btrfs.changes(path.join(snaps, '1'), path.join(snaps, '2'), BS);
    expect(r.changes).toEqual(separate);
    const listed = r.changes as typeof separate;
    expect(listed.gone).toContain('gone');
    expect([...listed.paths.keys()].sort()).toEqual(expect.arrayContaining(['kept', 'new']));
    const kept = listed.paths.get('kept')!;
    expect(kept.content === 'blocks' ? [...kept.blocks] : kept.content).toEqual([1]);
    expect(r.snapshotMs).toBeGreaterThanOrEqual(0);
    for (const dir of [process.cwd(), lfs.dir, root, snaps, '/']) {
      expect(fs.existsSync(path.join(dir, 'pwned'))).toBe(false);
      expect(fs.existsSync(path.join(dir, 'pwned2'))).toBe(false);
    }
  });

  it('throws with btrfs\'s message when the snapshot cannot be taken, and makes nothing', async () => {
    const lfs = makeLoopFs({ sizeMiB: 256, tag: 'snapfail' });
    const root = makeSubvolume(lfs, 'data');
    const btrfs = new Btrfs({ bin: findBtrfs()!, clock: systemClock });
    await btrfs.snapshot(root, path.join(lfs.dir, 'one'));
    const target = path.join(lfs.dir, 'no-such-dir', 'two');
    const err = await btrfs.snapshotAndChanges(root, target, path.join(lfs.dir, 'one'), BS).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TandemError);
    expect((err as TandemError).code).toBe('TANDEM_ERR_POINT_FAILED');
    expect((err as TandemError).message).toContain('take a snapshot');
    expect((err as TandemError).message).not.toContain('snapshot taken');
    expect(fs.existsSync(target)).toBe(false);
  });

  it('returns the listing\'s error with a good snapshot when the older one cannot be compared', async () => {
    const lfs = makeLoopFs({ sizeMiB: 256, tag: 'listfail' });
    const root = makeSubvolume(lfs, 'data');
    fs.writeFileSync(path.join(root, 'f'), 'f');
    const btrfs = new Btrfs({ bin: findBtrfs()!, clock: systemClock });
    const r = await btrfs.snapshotAndChanges(root, path.join(lfs.dir, 'two'), path.join(lfs.dir, 'never-taken'), BS);
    expect(r.changes).toBeInstanceOf(TandemError);
    expect((r.changes as TandemError).message).toContain('list the changes');
    expect(fs.readFileSync(path.join(lfs.dir, 'two', 'f'), 'utf8')).toBe('f');
  });
});
