// The snapshot store on a real btrfs of the test's own (a loop device): snapshots dropped are
// deleted several at a time (one btrfs command, one fork of the agent), none waits longer than
// its bound, and none is left once the store is closed. Needs root and btrfs-progs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Btrfs, SnapshotStore, defaultPointsDir, findBtrfs, preparePointsDir } from '../../../agent/points/index.ts';
import { FakeClock, systemClock } from '../../../shared/clock.ts';
import { silentLogger } from '../../../shared/log.ts';
import { btrfsUnavailable, cleanupLoops, makeLoopFs, makeSubvolume } from '../../helpers/btrfs-loop.ts';

const skip = btrfsUnavailable();
if (skip !== undefined) console.warn(`skipping the snapshot store's tests: ${skip}`);

afterEach(() => cleanupLoops());

function makeStore(clock: FakeClock, deleteBatch: number, deleteAfterMs: number): { store: SnapshotStore; dir: string } {
  const root = makeSubvolume(makeLoopFs({ sizeMiB: 256, tag: 'store' }), 'data');
  fs.writeFileSync(`${root}/x`, 'x');
  const dir = defaultPointsDir(root);
  expect(preparePointsDir(dir)).toBeUndefined();
  // The btrfs commands' own deadline runs on real time; the batching on the test's clock.
  const btrfs = new Btrfs({ bin: findBtrfs()!, clock: systemClock });
  return { store: new SnapshotStore({ root, dir, btrfs, clock, log: silentLogger(), deleteBatch, deleteAfterMs }), dir };
}

/** The snapshots on disk, by name, once the deletions handed to btrfs have ended. */
async function onDisk(dir: string, store: SnapshotStore): Promise<string[]> {
  await store.deletionsEnded();
  return fs.readdirSync(dir).sort();
}

describe.skipIf(skip !== undefined)('snapshot store (btrfs)', () => {
  it('deletes dropped snapshots together once a batch of them waits, and keeps the live one', async () => {
    const clock = new FakeClock();
    const { store, dir } = makeStore(clock, 3, 60_000);
    const snaps = [];
    for (let i = 0; i < 4; i++) snaps.push(await store.take());
    store.drop(snaps[0]);
    store.drop(snaps[1]);
    // Two dropped, the batch is three: both still on disk, waiting.
    expect(await onDisk(dir, store)).toEqual(['1', '2', '3', '4']);
    expect(store.waitingDeletion).toBe(2);
    store.drop(snaps[2]);
    expect(store.waitingDeletion).toBe(0);
    expect(await onDisk(dir, store)).toEqual(['4']);
    await store.close();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('deletes a dropped snapshot within its bound even when no batch fills', async () => {
    const clock = new FakeClock();
    const { store, dir } = makeStore(clock, 8, 5000);
    const a = await store.take();
    await store.take();
    store.drop(a);
    clock.advance(4999);
    expect(await onDisk(dir, store)).toEqual(['1', '2']);
    clock.advance(1);
    expect(store.waitingDeletion).toBe(0);
    expect(await onDisk(dir, store)).toEqual(['2']);
    await store.close();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('leaves no snapshot behind when closed with some dropped and waiting', async () => {
    const clock = new FakeClock();
    const { store, dir } = makeStore(clock, 8, 60_000);
    const snaps = [];
    for (let i = 0; i < 5; i++) snaps.push(await store.take());
    for (const s of snaps.slice(0, 4)) store.drop(s);
    expect(fs.readdirSync(dir).length).toBe(5);
    await store.close();
    expect(fs.readdirSync(dir)).toEqual([]);
    // The timer of the batch went with it: nothing runs later.
    clock.advance(120_000);
    expect(store.waitingDeletion).toBe(0);
  });

  it('deletes a snapshot its command made before failing (none is left behind after close)', async () => {
    const clock = new FakeClock();
    const lfs = makeLoopFs({ sizeMiB: 256, tag: 'orphan' });
    const root = makeSubvolume(lfs, 'data');
    const dir = defaultPointsDir(root);
    expect(preparePointsDir(dir)).toBeUndefined();
    const older = path.join(lfs.dir, 'older');
    execFileSync(findBtrfs()!, ['subvolume', 'snapshot', '-r', root, older], { stdio: 'ignore' });
    // A btrfs that makes the snapshot asked for and then reports a failure.
    const wrapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-btrfs-wrap-'));
    const wrapper = path.join(wrapDir, 'btrfs');
    fs.writeFileSync(wrapper, `#!/bin/sh\n"${findBtrfs()!}" "$@" >/dev/null || exit 1\n[ "$1" = subvolume ] && [ "$2" = snapshot ] && exit 1\nexit 0\n`, { mode: 0o755 });
    try {
      const store = new SnapshotStore({ root, dir, btrfs: new Btrfs({ bin: wrapper, clock: systemClock }), clock, log: silentLogger() });
      const failed = await store.takeAndList({ path: older, at: 0, doneAt: 0, tookMs: 0 }, 65536).then(
        () => false,
        () => true,
      );
      expect(failed).toBe(true);
      // The snapshot was made all the same: it waits for its deletion, and close deletes it.
      expect(fs.readdirSync(dir)).toEqual(['1']);
      await store.close();
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(wrapDir, { recursive: true, force: true });
    }
  });
});
