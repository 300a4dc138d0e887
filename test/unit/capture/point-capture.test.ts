// Capture in snapshot mode, on a real btrfs of the test's own (a loop device): points from
// read-only snapshots, changes listed by btrfs send, only changed blocks read. Needs root and
// btrfs-progs; skipped with a message otherwise.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Capture } from '../../../agent/capture/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Btrfs, PointLedger, PointMarker, SnapshotStore, defaultPointsDir, findBtrfs, preparePointsDir } from '../../../agent/points/index.ts';
import { systemClock } from '../../../shared/clock.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { WriteRecord } from '../../../shared/protocol/index.ts';
import { btrfsUnavailable, cleanupLoops, makeLoopFs, makeSubvolume } from '../../helpers/btrfs-loop.ts';
import { MemoryJournal } from '../../helpers/memory-journal.ts';
import { diffTrees, readTree, replay, type TreeModel } from '../../helpers/tree-model.ts';

const skip = btrfsUnavailable();
if (skip !== undefined) console.warn(`skipping capture's snapshot-mode tests: ${skip}`);

const BS = 64 * 1024;
const INTERVAL_MS = 200;

/** btrfs whose snapshots wait for `before` first: a snapshot that takes long to make. */
class SlowBtrfs extends Btrfs {
  before: (() => Promise<void>) | undefined;
  override async snapshot(source: string, target: string): Promise<void> {
    await this.before?.();
    return super.snapshot(source, target);
  }
  override async snapshotAndChanges(...a: Parameters<Btrfs['snapshotAndChanges']>): ReturnType<Btrfs['snapshotAndChanges']> {
    await this.before?.();
    return super.snapshotAndChanges(...a);
  }
}

interface RigOptions {
  /** Another capture of the same root, manifest and model (an agent started again). */
  after?: Rig;
}

interface Rig {
  root: string;
  manifest: Manifest;
  btrfs: SlowBtrfs;
  capture: Capture;
  journal: MemoryJournal;
  ledger: PointLedger;
  marker: PointMarker;
  model: TreeModel;
  pointsDir: string;
  settle(): Promise<void>;
}

const rigs: Rig[] = [];
const markerDirs: string[] = [];

async function makeRig(populate?: (root: string) => void, opts: RigOptions = {}): Promise<Rig> {
  const root = opts.after?.root ?? makeSubvolume(makeLoopFs({ sizeMiB: 512 }), 'data');
  populate?.(root);
  const journal = new MemoryJournal();
  const manifest = opts.after?.manifest ?? new Manifest(['data']);
  const pointsDir = defaultPointsDir(root);
  expect(preparePointsDir(pointsDir)).toBeUndefined();
  const btrfs = new SlowBtrfs({ bin: findBtrfs()!, clock: systemClock });
  const store = new SnapshotStore({ root, dir: pointsDir, btrfs, clock: systemClock, log: silentLogger() });
  const ledger = new PointLedger();
  const markerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-marker-'));
  markerDirs.push(markerDir);
  const marker = PointMarker.open(markerDir, systemClock, silentLogger());
  const capture = new Capture({
    roots: [{ name: 'data', path: root, exclude: [] }],
    manifest,
    journal,
    blockSize: BS,
    batchBytes: 1024 * 1024,
    batchDelayMs: 2,
    settleMs: 40,
    scanIntervalMs: 0,
    renameWindowMs: 60,
    baseline: false,
    afterCommit: async () => {},
    log: silentLogger(),
    clock: systemClock,
    watch: true,
    points: { stores: new Map([['data', store]]), intervalMs: INTERVAL_MS, marker, ledger },
  });
  const model: TreeModel = new Map(opts.after?.model);
  let replayed = 0;
  const rig: Rig = {
    root,
    manifest,
    btrfs,
    capture,
    journal,
    ledger,
    marker,
    model,
    pointsDir,
    async settle() {
      // Whatever was written before now is in the next point: wait for it to close.
      const before = capture.status().points!.taken;
      await capture.scanAll('drain');
      const deadline = Date.now() + 20_000;
      while (capture.status().points!.taken === before || capture.status().pendingPaths > 0) {
        await capture.whenIdle();
        if (Date.now() > deadline) throw new Error(`no point closed: ${JSON.stringify(capture.status())}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      await capture.whenIdle();
      replay(model, journal.records.slice(replayed));
      replayed = journal.records.length;
    },
  };
  rigs.push(rig);
  await capture.start();
  return rig;
}

beforeAll(async () => {
  await initHash();
});

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.capture.stop();
    r.marker.close();
  }
  for (const d of markerDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  cleanupLoops();
});

/** Waits for `ok`, polling; the error says what was awaited and capture's point figures. */
async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(rigs.map((r) => r.capture.status().points))}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

function write(p: string, data: Buffer | string): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
}

describe.skipIf(skip !== undefined)('capture in snapshot mode (btrfs)', () => {
  it('journals the tree from a snapshot: every batch belongs to a point and the last one closes it', async () => {
    const r = await makeRig((root) => {
      write(path.join(root, 'a/one.txt'), 'one');
      write(path.join(root, 'b/c/two.bin'), crypto.randomBytes(300 * 1024));
    });
    await r.settle();
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
    const batches = r.journal.batches;
    expect(batches.length).toBeGreaterThan(0);
    expect(batches.every((b) => b.point !== undefined)).toBe(true);
    const last = batches[batches.length - 1]!;
    expect(last.point!.end).toBe(true);
    expect(r.ledger.newest()?.id).toBe(last.last);
    expect(r.capture.consistency()).toEqual([{ root: 'data', mode: 'snapshot', reason: expect.stringContaining('snapshot') }]);
  });

  it('reads only the blocks btrfs lists as changed, and journals one block for a 4 KiB change in 8 MiB', async () => {
    const big = crypto.randomBytes(8 * 1024 * 1024);
    const r = await makeRig((root) => write(path.join(root, 'big.db'), big));
    await r.settle();
    const hashedBefore = r.capture.status().bytesHashed;
    r.journal.clear();
    const fd = fs.openSync(path.join(r.root, 'big.db'), 'r+');
    fs.writeSync(fd, crypto.randomBytes(4096), 0, 4096, 3 * 1024 * 1024 + 100);
    fs.closeSync(fd);
    await r.settle();
    const writes = r.journal.recent().filter((x): x is WriteRecord => x.op === 'write');
    expect(writes.map((w) => w.offset)).toEqual([3 * 1024 * 1024]);
    // One or two 64 KiB blocks read (where the 4 KiB landed), not 8 MiB.
    expect(r.capture.status().bytesHashed - hashedBefore).toBeLessThanOrEqual(2 * BS);
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
  });

  it('journals a rewrite that left size and mtime as they were: the change list, not the stat, says the bytes changed', async () => {
    // A write within the mtime's timestamp tick (4 ms) does not move it; utimes stands in for
    // that tick here. Stamped long ago, the file's stat is not racy: only the list can tell.
    const old = new Date('2020-01-02T03:04:05.678Z');
    const file = (root: string) => path.join(root, 'same.db');
    const r = await makeRig((root) => {
      write(file(root), crypto.randomBytes(256 * 1024));
      fs.utimesSync(file(root), old, old);
    });
    await r.settle();
    r.journal.clear();
    const fd = fs.openSync(file(r.root), 'r+');
    fs.writeSync(fd, crypto.randomBytes(4096), 0, 4096, 70 * 1024);
    fs.closeSync(fd);
    fs.utimesSync(file(r.root), old, old);
    await r.settle();
    expect(r.journal.recent().filter((x): x is WriteRecord => x.op === 'write').map((w) => w.offset)).toEqual([BS]);
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
  });

  it('journals an attribute changed within the ctime tick the manifest holds: the change list names the file and the directory', async () => {
    const r = await makeRig((root) => {
      write(path.join(root, 'd/f'), 'content');
      execFileSync('setfattr', ['-n', 'user.kind', '-v', 'one', path.join(root, 'd/f')]);
      execFileSync('setfattr', ['-n', 'user.kind', '-v', 'one', path.join(root, 'd')]);
    });
    await r.settle();
    r.journal.clear();
    for (const p of ['d/f', 'd']) {
      execFileSync('setfattr', ['-n', 'user.kind', '-v', 'two', path.join(r.root, p)]);
      // As if the first value had been read in the tick of this change: its ctime proves nothing.
      const e = r.manifest.get('data', p)!;
      r.manifest.set('data', p, { ...e, ctimeMs: fs.lstatSync(path.join(r.root, p)).ctimeMs } as typeof e);
    }
    await r.settle();
    const xattrsOf = (p: string) =>
      r.journal
        .recent()
        .filter((x) => (x.op === 'meta' || x.op === 'mkdir') && x.path === p)
        .map((x) => ('xattrs' in x ? x.xattrs?.map(([n, v]) => `${n}=${Buffer.from(v).toString()}`) : undefined));
    expect(xattrsOf('d/f')).toEqual([['user.kind=two']]);
    expect(xattrsOf('d')).toEqual([['user.kind=two']]);
  });

  it('closes no point while a path of its snapshot could not be journaled, and closes one once a later round has', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    const before = r.ledger.newest()!.id;
    const batchesBefore = r.journal.batches.length;
    r.journal.failFor.set('b.txt', 1);
    write(path.join(r.root, 'a.txt'), 'a');
    write(path.join(r.root, 'b.txt'), 'b');
    await r.settle();
    const batches = r.journal.batches.slice(batchesBefore);
    // The round that failed b.txt journaled a.txt in a batch that ends no point: a copy at its
    // end would hold a.txt of the new instant and b.txt of none.
    expect(batches.length).toBeGreaterThanOrEqual(2);
    expect(batches[0]!.point?.end).toBe(false);
    expect(r.ledger.heldAt(batches[0]!.last)?.id).toBe(before);
    // The next round took b.txt from its own snapshot and closed the point.
    const last = batches[batches.length - 1]!;
    expect(last.point?.end).toBe(true);
    expect(r.ledger.newest()?.id).toBe(last.last);
    expect(r.capture.status().problems).toEqual([]);
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
  });

  it('waits three points at most for a path that cannot be journaled, then closes them without it and says so', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    r.journal.failFor.set('stuck.txt', 1_000);
    write(path.join(r.root, 'stuck.txt'), 'cannot be journaled for now');
    write(path.join(r.root, 'fine.txt'), 'fine');
    await until('a point closed without stuck.txt', () => r.ledger.newest()!.id === r.journal.headSeq && r.journal.records.some((x) => 'path' in x && x.path === 'fine.txt'));
    const notice = r.capture.status().notices.find((n) => n.code === 'TANDEM_ERR_POINT_FAILED');
    expect(notice?.message).toMatch(/stuck\.txt: not journaled in 3 points in a row/);
    expect(r.capture.status().problems.map((p) => p.path)).toEqual(['stuck.txt']);
    // Once it can be journaled, the next point takes it.
    r.journal.failFor.delete('stuck.txt');
    await r.settle();
    await until('stuck.txt journaled', () => r.journal.records.some((x) => 'path' in x && x.path === 'stuck.txt'));
    await r.settle();
    expect(r.capture.status().problems).toEqual([]);
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
  });

  it('does not hold points back for a name the journal refuses (a backslash in it): it stays an alarm', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    write(path.join(r.root, 'odd\\name.txt'), 'a name the protocol refuses');
    write(path.join(r.root, 'fine.txt'), 'fine');
    await r.settle();
    const last = r.journal.batches[r.journal.batches.length - 1]!;
    expect(last.point?.end).toBe(true);
    expect(r.ledger.newest()?.id).toBe(last.last);
    expect(r.capture.status().problems.map((p) => p.path)).toEqual(['odd\\name.txt']);
    // Not read again at every point: no point is forced for it, so capture goes idle (a path
    // retried forces a point every interval, and capture is never idle between them).
    const idle = await Promise.race([r.capture.whenIdle().then(() => true), new Promise<false>((res) => setTimeout(() => res(false), 20_000))]);
    expect(idle).toBe(true);
    // Renamed to a refused name, a file is gone for the passive; the point still closes.
    fs.renameSync(path.join(r.root, 'fine.txt'), path.join(r.root, 'now\\odd.txt'));
    write(path.join(r.root, 'odd\\name.txt'), 'written again');
    await r.settle();
    expect(r.journal.ops()).toContain('unlink fine.txt');
    expect(r.capture.status().problems.map((p) => p.path).sort()).toEqual(['now\\odd.txt', 'odd\\name.txt']);
    expect(r.ledger.newest()?.id).toBe(r.journal.batches[r.journal.batches.length - 1]!.last);
  });

  it('keeps racy a file stamped while its snapshot was being made, so that a restart compares its bytes', async () => {
    const file = (root: string) => path.join(root, 'slow.db');
    const r = await makeRig((root) => write(file(root), crypto.randomBytes(128 * 1024)));
    await r.settle();
    // The next snapshot takes 300 ms to make (btrfs flushing a loaded root); the file is
    // written and stamped 100 ms in, well after the window around the asking.
    let stamp: Date | undefined;
    r.btrfs.before = async () => {
      r.btrfs.before = undefined;
      await new Promise((res) => setTimeout(res, 100));
      const fd = fs.openSync(file(r.root), 'r+');
      fs.writeSync(fd, crypto.randomBytes(4096), 0, 4096, 0);
      fs.closeSync(fd);
      stamp = new Date();
      fs.utimesSync(file(r.root), stamp, stamp);
      await new Promise((res) => setTimeout(res, 200));
    };
    write(path.join(r.root, 'start-a-round.txt'), 'x');
    await r.settle();
    expect(stamp).toBeDefined();
    await r.settle();
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
    // The agent stops; the file is written again after the instant within the same tick (its
    // size and mtime as they were), and the agent starts again: its first point compares the
    // snapshot with the manifest, whose record of the file must not prove the old bytes.
    await r.capture.stop();
    r.marker.close();
    const fd = fs.openSync(file(r.root), 'r+');
    fs.writeSync(fd, crypto.randomBytes(4096), 0, 4096, 0);
    fs.closeSync(fd);
    fs.utimesSync(file(r.root), stamp!, stamp!);
    const again = await makeRig(undefined, { after: r });
    await again.settle();
    expect(again.journal.ops()).toContain('write slow.db');
    expect(diffTrees(again.model, readTree(again.root))).toBe('');
  });

  it('journals a renamed directory as one rename, and removals as removals', async () => {
    const r = await makeRig((root) => {
      for (let i = 0; i < 20; i++) write(path.join(root, `dir/f${i}`), `file ${i}`);
      write(path.join(root, 'gone.txt'), 'bye');
    });
    await r.settle();
    r.journal.clear();
    fs.renameSync(path.join(r.root, 'dir'), path.join(r.root, 'moved'));
    fs.rmSync(path.join(r.root, 'gone.txt'));
    fs.rmSync(path.join(r.root, 'moved/f3'));
    await r.settle();
    expect(r.journal.ops().sort()).toEqual(['rename dir>moved', 'unlink gone.txt', 'unlink moved/f3']);
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
  });

  it('says the last point is still the disk some time later without taking a snapshot when nothing changed', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    const p0 = r.ledger.newest()!;
    const taken = r.capture.status().points!.taken;
    await new Promise((res) => setTimeout(res, INTERVAL_MS * 4));
    const p1 = r.ledger.newest()!;
    expect(p1.id).toBe(p0.id);
    expect(p1.at).toBeGreaterThan(p0.at);
    expect(r.capture.status().points!.taken).toBe(taken);
  });

  it('does not say the last point is still the disk once the journal holds records past it', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    const p0 = r.ledger.newest()!;
    // Records past the point that closed no other (what a round that could not finish leaves).
    await r.journal.commit(false, undefined);
    r.journal.append({ op: 'mkdir', root: 'data', path: 'past-the-point', mode: 0o755 });
    await r.journal.commit(false, undefined);
    await new Promise((res) => setTimeout(res, INTERVAL_MS * 4));
    const p1 = r.ledger.newest()!;
    expect(p1).toEqual(p0);
  });

  it('captures file by file while snapshots fail, says so, and takes points again once they work', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    // The points directory disappears: no snapshot can be taken.
    fs.renameSync(r.pointsDir, `${r.pointsDir}.away`);
    write(path.join(r.root, 'during.txt'), 'written while snapshots fail');
    r.capture.hint('data', 'during.txt');
    const deadline = Date.now() + 10_000;
    while (r.capture.consistency()[0]!.mode !== 'file') {
      if (Date.now() > deadline) throw new Error('no fallback');
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(r.capture.consistency()[0]!.reason).toMatch(/snapshots fail/);
    expect(r.capture.status().notices.map((n) => n.code)).toContain('TANDEM_ERR_POINT_FAILED');
    await r.capture.whenIdle();
    replay(r.model, r.journal.records);
    expect(r.model.get('during.txt')).toBeDefined();
    fs.renameSync(`${r.pointsDir}.away`, r.pointsDir);
    write(path.join(r.root, 'after.txt'), 'after');
    r.model.clear();
    await r.settle();
    replay(r.model, r.journal.records);
    expect(r.capture.consistency()[0]!.mode).toBe('snapshot');
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
  });

  it("sets a busy directory's watch aside, captures it from the change lists meanwhile, and watches it again once it is quiet", async () => {
    const r = await makeRig((root) => write(path.join(root, 'hot/wal'), ''));
    await r.settle();
    expect(r.capture.status().points!.unwatched).toBe(0);
    // A log appended to as a database does: an event per write, each read by the watcher.
    const wal = path.join(r.root, 'hot/wal');
    let n = 0;
    const append = async (count: number) => {
      for (let i = 0; i < count; i++, n++) {
        fs.appendFileSync(wal, `record ${n}\n`);
        await new Promise((res) => setImmediate(res));
      }
    };
    await append(200);
    await until('the busy directory set aside', () => r.capture.status().points!.unwatched === 1);
    // Points keep coming while it is not watched, each listing what changed in it.
    const taken = r.capture.status().points!.taken;
    while (r.capture.status().points!.taken < taken + 3) await append(20);
    await r.settle();
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
    // Quiet: the next point lists nothing there, and the watch is back.
    await until('the watch back', () => r.capture.status().points!.unwatched === 0);
    await r.capture.whenIdle();
    // Proof that it watches again: with no scans and nothing forcing a point, only an event
    // can bring this file into one.
    const before = r.journal.records.length;
    write(path.join(r.root, 'hot/late.txt'), 'after the busy spell');
    await until('the late file journaled', () => r.journal.records.slice(before).some((x) => 'path' in x && x.path === 'hot/late.txt'));
    await r.settle();
    expect(diffTrees(r.model, readTree(r.root))).toBe('');
  });

  it('watches a busy directory again and looks at all of it when snapshots start failing', async () => {
    const r = await makeRig((root) => write(path.join(root, 'hot/wal'), ''));
    await r.settle();
    const wal = path.join(r.root, 'hot/wal');
    for (let i = 0; i < 200 && r.capture.status().points!.unwatched === 0; i++) {
      fs.appendFileSync(wal, `record ${i}\n`);
      await new Promise((res) => setImmediate(res));
    }
    expect(r.capture.status().points!.unwatched).toBe(1);
    // Still busy when snapshots start failing: from then on the root is read file by file,
    // from hints only.
    fs.renameSync(r.pointsDir, `${r.pointsDir}.away`);
    write(path.join(r.root, 'hot/new.txt'), 'made while snapshots fail');
    const deadline = Date.now() + 20_000;
    for (let i = 0; r.capture.consistency()[0]!.mode !== 'file'; i++) {
      if (Date.now() > deadline) throw new Error('no fallback');
      fs.appendFileSync(wal, `while snapshots fail ${i}\n`);
      await new Promise((res) => setImmediate(res));
    }
    const diff = () => diffTrees(replay(new Map(), r.journal.records), readTree(r.root));
    while (r.capture.consistency()[0]!.mode !== 'file' || r.capture.status().points!.unwatched !== 0 || diff() !== '') {
      if (Date.now() > deadline) throw new Error(`not captured file by file: ${diff()}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    // And the watch is back: a change there now is hinted by it.
    const before = r.journal.records.length;
    write(path.join(r.root, 'hot/later.txt'), 'later');
    while (!r.journal.records.slice(before).some((x) => 'path' in x && x.path === 'hot/later.txt')) {
      if (Date.now() > deadline) throw new Error('hot/later.txt never journaled');
      await new Promise((res) => setTimeout(res, 20));
    }
    fs.renameSync(`${r.pointsDir}.away`, r.pointsDir);
  });

  it('deletes its snapshots when it stops, and those a killed agent left when it starts', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    expect(fs.readdirSync(r.pointsDir).length).toBeGreaterThan(0);
    // A snapshot as a killed agent would leave it.
    execFileSync('btrfs', ['subvolume', 'snapshot', '-r', r.root, path.join(r.pointsDir, '999')], { stdio: 'ignore' });
    await r.capture.stop();
    const store = new SnapshotStore({ root: r.root, dir: r.pointsDir, btrfs: new Btrfs({ bin: findBtrfs()!, clock: systemClock }), clock: systemClock, log: silentLogger() });
    await store.removeLeftovers();
    expect(fs.readdirSync(r.pointsDir)).toEqual([]);
  });

  it('turns a root holding a nested subvolume to file mode, and never removes what the subvolume holds', async () => {
    const r = await makeRig((root) => write(path.join(root, 'x'), 'x'));
    await r.settle();
    execFileSync('btrfs', ['subvolume', 'create', path.join(r.root, 'nested')], { stdio: 'ignore' });
    write(path.join(r.root, 'nested/inside.txt'), 'inside');
    // The live tree is read file by file from now on: the nested content is journaled, never removed.
    const deadline = Date.now() + 15_000;
    for (;;) {
      await r.capture.whenIdle();
      replay(r.model, r.journal.recent());
      r.journal.clear();
      if (r.capture.consistency()[0]!.mode === 'file' && r.model.get('nested/inside.txt') !== undefined) break;
      if (Date.now() > deadline) throw new Error(`nested subvolume not handled: ${JSON.stringify(r.capture.consistency())} ${JSON.stringify([...r.model.keys()])}`);
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(r.capture.consistency()[0]!.reason).toMatch(/nested subvolume/);
    expect(r.journal.records.filter((x) => x.op === 'rmdir' || x.op === 'unlink')).toEqual([]);
    execFileSync('btrfs', ['subvolume', 'delete', path.join(r.root, 'nested')], { stdio: 'ignore' });
  });
});
