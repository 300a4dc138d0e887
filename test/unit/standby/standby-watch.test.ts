// The standby watch over a real applier writing a real tree (temp directories, real inotify):
// the applier's own writes are never reported, however their events interleave with later
// batches; a change by anyone else is, also while a batch is in flight; it stays reported
// until the path is back to what the applier left (content included) and across a restart.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Applier } from '../../../agent/apply/applier.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { StandbyWatch } from '../../../agent/standby/index.ts';
import { SCAN_QUIET_MS } from '../../../agent/standby/standby-watch.ts';
import { FakeClock, systemClock, type Clock } from '../../../shared/clock.ts';
import { initHash } from '../../../shared/hash.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';
import { sleep, until } from '../../helpers/pair.ts';
import { ROOT, RecordBuilder, bytes, tmpDir } from '../apply/helpers.ts';

const BS = 4096;

let base: string;
let rootDir: string;
let watches: StandbyWatch[] = [];

beforeAll(() => initHash());

beforeEach(() => {
  base = tmpDir('tandem-standby-');
  rootDir = path.join(base, 'root');
  fs.mkdirSync(rootDir);
});

afterEach(async () => {
  for (const w of watches) await w.stop();
  watches = [];
  fs.rmSync(base, { recursive: true, force: true });
});

interface Rig {
  watch: StandbyWatch;
  manifest: Manifest;
  /** Applies records through the watch, as the receiver does. */
  apply(records: DataRecord[]): Promise<void>;
  /** The same, with the batch's durable point in the test's hands. */
  applyWith(records: DataRecord[], durable: () => Promise<void>): Promise<void>;
}

async function rig(opts: { manifest?: Manifest; beforeRecord?: (r: DataRecord) => void | Promise<void>; clock?: Clock; scanIntervalMs?: number } = {}): Promise<Rig> {
  const manifest = opts.manifest ?? new Manifest([ROOT]);
  const roots = [{ name: ROOT, path: rootDir, exclude: [] }];
  const applier = new Applier({ roots, manifest, blockSize: BS, log: silentLogger(), ...(opts.beforeRecord === undefined ? {} : { seams: { beforeRecord: opts.beforeRecord } }) });
  await applier.init();
  const watch = await StandbyWatch.open({
    roots,
    manifest,
    blockSize: BS,
    stateDir: path.join(base, 'state'),
    scanIntervalMs: opts.scanIntervalMs ?? 0,
    rateBytesPerSec: 0,
    holdsReplica: () => true,
    log: silentLogger(),
    clock: opts.clock ?? systemClock,
  });
  watches.push(watch);
  watch.start(Promise.resolve());
  const wrapped = watch.wrap(applier);
  return {
    watch,
    manifest,
    apply: async (records) => {
      await wrapped.apply(records, async () => {});
    },
    applyWith: async (records, durable) => {
      await wrapped.apply(records, durable);
    },
  };
}

/** Until no check ran for a while: every event of what happened so far was looked at. */
async function quiet(watch: StandbyWatch): Promise<void> {
  for (;;) {
    const before = watch.stats();
    await sleep(200);
    const after = watch.stats();
    if (after.pending === 0 && after.checks === before.checks && after.exams === before.exams) return;
  }
}

function alarmText(watch: StandbyWatch): string {
  return watch.alarm()?.message ?? '';
}

function abs(rel: string): string {
  return path.join(rootDir, rel);
}

/** By hand: `n` bytes of `fill` written in place at `offset`. */
function overwrite(rel: string, offset: number, n: number, fill: number): void {
  const fd = fs.openSync(abs(rel), 'r+');
  fs.writeSync(fd, Buffer.alloc(n, fill), 0, n, offset);
  fs.closeSync(fd);
}

/** A file of `size` bytes (seed) as capture sends it, with its meta. */
function newFile(b: RecordBuilder, rel: string, size: number, seed: number, mode = 0o644, mtimeMs = 1_700_000_000_000): void {
  b.content(rel, bytes(size, seed), BS);
  b.meta(rel, mode, mtimeMs);
}

describe('StandbyWatch', () => {
  it("never reports the applier's own writes, whatever their events interleave with", async () => {
    const r = await rig();
    const b = new RecordBuilder();
    for (let i = 0; i < 40; i++) {
      b.mkdir(`d${i % 5}`);
      b.content(`d${i % 5}/f${i}.bin`, bytes(3 * BS + i, i), BS);
      b.meta(`d${i % 5}/f${i}.bin`, 0o640, 1_700_000_000_000 + i);
    }
    b.symlink('link', 'd0/f0.bin');
    b.rename('d1/f1.bin', 'd2/moved.bin');
    b.rename('d3', 'd3-moved');
    b.write('d0/f0.bin', BS, bytes(BS, 99));
    b.unlink('d4/f4.bin');
    b.rmdir('d4');
    b.mkdir('d0', 0o700);
    // Applied in small batches back to back: events of one arrive while the next runs.
    for (let i = 0; i < b.records.length; i += 7) await r.apply(b.records.slice(i, i + 7));
    await quiet(r.watch);
    expect(alarmText(r.watch)).toBe('');
    expect(r.watch.stats().checks).toBeGreaterThan(100);
    // A directory replaced by a file, then by a directory again.
    const swap = new RecordBuilder(1000);
    swap.content('d2', 'now a file\n', BS);
    await r.apply(swap.records);
    await quiet(r.watch);
    const back = new RecordBuilder(2000);
    back.mkdir('d2');
    await r.apply(back.records);
    await quiet(r.watch);
    expect(alarmText(r.watch)).toBe('');
    // The tree is watched where the applier made, moved and replaced directories (there are no
    // periodic scans here): a change there is seen.
    fs.writeFileSync(abs('d3-moved/by-hand.txt'), 'x');
    fs.writeFileSync(abs('d2/by-hand.txt'), 'x');
    await until('the changes in a moved and a replaced directory reported', () => {
      const t = alarmText(r.watch);
      return t.includes('data/d3-moved/by-hand.txt created') && t.includes('data/d2/by-hand.txt created') ? true : undefined;
    }, 5000);
  });

  it('checks each path of a batch once when it ends, not once more for the events its own writes made', async () => {
    const r = await rig();
    const dir = new RecordBuilder();
    dir.mkdir('d');
    await r.apply(dir.records);
    await quiet(r.watch);
    const n = 40;
    const b = new RecordBuilder(100);
    for (let i = 0; i < n; i++) newFile(b, `d/f${i}.bin`, BS + i, i);
    const before = r.watch.stats().checks;
    // The batch ends once the events of its writes have come in and were held back (on a busy
    // machine they come late; the batch waits for them, as a slow durable point would).
    await r.applyWith(b.records, async () => {
      await until('the events of the batch', () => (r.watch.stats().deferred >= n ? true : undefined), 30_000);
      let last = -1;
      await until('no more events', async () => {
        const now = r.watch.stats().deferred;
        if (now === last) return true;
        last = now;
        await sleep(150);
        return undefined;
      }, 30_000);
    });
    await quiet(r.watch);
    expect(alarmText(r.watch)).toBe('');
    // One check per file after the batch (a late event may add one); each file twice before.
    const checks = r.watch.stats().checks - before;
    expect(checks).toBeGreaterThanOrEqual(n);
    expect(checks).toBeLessThan(1.5 * n);
  });

  it('reports a change made elsewhere while a batch is in flight, before that batch ends, and not the batch itself', async () => {
    let hold: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (hold = resolve));
    let holding = false;
    const r = await rig({
      beforeRecord: async (rec) => {
        if (rec.op === 'write' && rec.path === 'busy.bin' && rec.offset === 2 * BS) {
          holding = true;
          await held;
        }
      },
    });
    const b0 = new RecordBuilder();
    b0.content('other.txt', 'replicated\n', BS);
    await r.apply(b0.records);
    const b = new RecordBuilder(100);
    b.content('busy.bin', bytes(4 * BS, 1), BS);
    const batch = r.apply(b.records);
    await until('the batch held mid-file', () => (holding ? true : undefined), 5000);
    // busy.bin is half written: its events come, it is not judged. other.txt is written by hand.
    fs.appendFileSync(abs('other.txt'), 'by hand\n');
    await until('the hand-made change reported', () => (alarmText(r.watch) !== '' ? true : undefined), 5000);
    expect(alarmText(r.watch)).toMatch(/: 1 path \(data\/other\.txt written\)$/);
    hold!();
    await batch;
    await quiet(r.watch);
    expect(alarmText(r.watch)).toMatch(/: 1 path \(data\/other\.txt written\)$/);
  });

  it('keeps a file reported when the applier writes another block of it, until it is all the active\'s again', async () => {
    const r = await rig();
    const b = new RecordBuilder();
    newFile(b, 'f.bin', 3 * BS, 1);
    await r.apply(b.records);
    await quiet(r.watch);
    // By hand: block 2 rewritten in place.
    overwrite('f.bin', 2 * BS + 5, 10, 7);
    await until('reported', () => (alarmText(r.watch).includes('data/f.bin written') ? true : undefined), 5000);
    // The active changes block 0 and sets the mtime: the stat is the applier's again, block 2 is not.
    const b2 = new RecordBuilder(100);
    b2.write('f.bin', 0, bytes(BS, 2));
    b2.meta('f.bin', 0o644, 1_700_000_001_000);
    await r.apply(b2.records);
    await quiet(r.watch);
    expect(alarmText(r.watch)).toMatch(/data\/f\.bin written/);
    // The active rewrites it whole: nothing of the hand-made change is left.
    const b3 = new RecordBuilder(200);
    newFile(b3, 'f.bin', 3 * BS, 3, 0o644, 1_700_000_002_000);
    await r.apply(b3.records);
    await until('cleared', () => (alarmText(r.watch) === '' ? true : undefined), 5000);
  });

  it('finds bytes rewritten in place with the mtime put back, and keeps them reported across a restart', async () => {
    const manifest = new Manifest([ROOT]);
    const r = await rig({ manifest });
    const b = new RecordBuilder();
    newFile(b, 'db.bin', 4 * BS, 5, 0o600);
    await r.apply(b.records);
    await quiet(r.watch);
    overwrite('db.bin', BS + 3, 8, 1);
    fs.utimesSync(abs('db.bin'), 1_700_000_000, 1_700_000_000);
    await until('reported', () => (alarmText(r.watch).includes('data/db.bin written') ? true : undefined), 5000);
    expect(r.watch.stats().exams).toBeGreaterThan(0);
    await r.watch.stop();
    watches = [];
    // Another agent process: nothing in its memory, the stat matches, the list on disk says it.
    const again = await rig({ manifest });
    await quiet(again.watch);
    expect(alarmText(again.watch)).toMatch(/: 1 path \(data\/db\.bin written\)$/);
    expect(again.watch.isModified).toBe(true);
  });

  it('reports a chmod, an unlink and a new directory with a file, and clears each as the applier puts it back', async () => {
    const r = await rig();
    const b = new RecordBuilder();
    b.content('a.txt', 'a\n', BS);
    b.meta('a.txt', 0o644, 1_700_000_000_000);
    b.content('b.txt', 'b\n', BS);
    b.meta('b.txt', 0o644, 1_700_000_000_000);
    await r.apply(b.records);
    await quiet(r.watch);
    fs.chmodSync(abs('a.txt'), 0o666);
    fs.rmSync(abs('b.txt'));
    fs.mkdirSync(abs('extra'));
    fs.writeFileSync(abs('extra/x.txt'), 'x');
    await until('all reported', () => {
      const t = alarmText(r.watch);
      return ['data/a.txt mode changed', 'data/b.txt removed', 'data/extra created', 'data/extra/x.txt created'].every((p) => t.includes(p)) ? true : undefined;
    }, 5000);
    // What tandem verify --repair journals for them.
    const fix = new RecordBuilder(100);
    fix.meta('a.txt', 0o644, 1_700_000_000_000);
    fix.content('b.txt', 'b\n', BS);
    fix.meta('b.txt', 0o644, 1_700_000_000_000);
    fix.rmdir('extra');
    await r.apply(fix.records);
    await until('cleared', () => (alarmText(r.watch) === '' ? true : undefined), 5000);
  });

  it('clears what was reported inside a directory made by hand once that directory is moved out or removed, without a batch', async () => {
    const r = await rig();
    const b = new RecordBuilder();
    b.content('a.txt', 'a\n', BS);
    await r.apply(b.records);
    await quiet(r.watch);
    fs.mkdirSync(abs('extra/deep'), { recursive: true });
    fs.writeFileSync(abs('extra/x.txt'), 'x');
    fs.writeFileSync(abs('extra/deep/y.txt'), 'y');
    await until('reported', () => (['data/extra created', 'data/extra/x.txt created', 'data/extra/deep/y.txt created'].every((p) => alarmText(r.watch).includes(p)) ? true : undefined), 5000).catch((e: unknown) => { throw new Error(`${String(e)}: ${alarmText(r.watch)}`); });
    // The intruder takes the directory away again (moved out of the root): nothing is left to report.
    fs.renameSync(abs('extra'), path.join(base, 'moved-out'));
    await until('cleared', () => (alarmText(r.watch) === '' ? true : undefined), 5000);
  });

  it('waits with a periodic scan while the applier is at work, for a pause or at most one more interval', async () => {
    const clock = new FakeClock();
    const interval = 60_000;
    const r = await rig({ clock, scanIntervalMs: interval });
    // Real I/O between the steps of the fake clock: long enough for a scan of this small tree to end.
    const settle = () => sleep(150);
    await until('the scan at start', () => (r.watch.stats().scans === 1 ? true : undefined), 30_000);
    let n = 0;
    const batch = async () => {
      const b = new RecordBuilder(++n * 10);
      b.mkdir(`d${n}`);
      await r.apply(b.records);
    };
    // Due at 60 s: a batch half a second before puts it off until a second after that batch...
    await clock.advanceAsync(interval - 500, settle);
    await batch();
    await clock.advanceAsync(500, settle);
    expect(r.watch.stats().scans).toBe(1);
    // ...and another batch, again.
    await batch();
    await clock.advanceAsync(SCAN_QUIET_MS - 1, settle);
    expect(r.watch.stats().scans).toBe(1);
    await clock.advanceAsync(1, settle);
    await until('the periodic scan after the pause', () => (r.watch.stats().scans === 2 ? true : undefined), 30_000);
    const due = clock.monotonic() + interval;
    // A batch every 500 ms from before the next one is due: it waits one more interval at most.
    await clock.advanceAsync(interval - 1000);
    while (clock.monotonic() < due + interval - 500) {
      await batch();
      await clock.advanceAsync(500);
    }
    await settle();
    expect(r.watch.stats().scans).toBe(2);
    await batch();
    await clock.advanceAsync(500, settle);
    await until('the periodic scan one interval late', () => (r.watch.stats().scans === 3 ? true : undefined), 30_000);
  });

  it('forgets the changed paths when a synchronisation begins (it rewrites the tree)', async () => {
    const r = await rig();
    fs.writeFileSync(abs('stray.txt'), 'x');
    await until('reported', () => (alarmText(r.watch) !== '' ? true : undefined), 5000);
    const b = new RecordBuilder(10);
    b.syncBegin();
    await r.apply(b.records);
    expect(alarmText(r.watch)).toBe('');
  });
});
