// The passive side of the lag measurement, in its own process so that it neither steals the
// writer's event loop nor hides its own CPU: it watches the passive's directories (fs.watch,
// inotify) as a hint, verifies each file's size and content, and notes the time it first saw
// the file complete. A directory scan every SCAN_INTERVAL_MS catches anything the watcher
// missed. Talks to the parent over IPC: {start} in, {ready} and {result} out.
import fs from 'node:fs';
import path from 'node:path';
import { nowMs } from './clock.ts';
import { lagFile, lagIndexOf, type LagFile } from './lag-files.ts';

const SCAN_INTERVAL_MS = 50;
/** Files seen but not yet complete (an event came before the content) are looked at this often. */
const RECHECK_INTERVAL_MS = 2;

export interface PollerStart {
  type: 'start';
  root: string;
  dirCount: number;
  count: number;
}

export interface PollerResult {
  type: 'result';
  /** CLOCK_MONOTONIC ms at which each file was first seen complete on the passive; null if never. */
  appearedAt: (number | null)[];
  foundByScan: number;
  events: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  wallMs: number;
}

function send(msg: unknown): void {
  process.send!(msg);
}

function run(cfg: PollerStart): void {
  const appearedAt: (number | null)[] = new Array<number | null>(cfg.count).fill(null);
  const expected = new Map<number, LagFile>();
  const want = (i: number): LagFile => {
    let f = expected.get(i);
    if (f === undefined) {
      f = lagFile(i, cfg.dirCount);
      expected.set(i, f);
    }
    return f;
  };
  let found = 0;
  let foundByScan = 0;
  let events = 0;
  const buf = Buffer.alloc(8192);

  // Files that exist but were not complete when looked at: no further event is guaranteed
  // (the last write and the event may be one), so they are looked at again every few ms.
  const incomplete = new Map<number, { dir: string; name: string }>();
  const check = (dir: string, name: string, byScan: boolean): void => {
    const i = lagIndexOf(name);
    if (i < 0 || i >= cfg.count || appearedAt[i] !== null) return;
    const f = want(i);
    if (f.dir !== dir) return;
    let fd: number;
    try {
      fd = fs.openSync(path.join(cfg.root, dir, name), 'r');
    } catch {
      return;
    }
    try {
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      if (n !== f.size || !buf.subarray(0, n).equals(f.content)) {
        incomplete.set(i, { dir, name });
        return;
      }
    } finally {
      fs.closeSync(fd);
    }
    appearedAt[i] = nowMs();
    found++;
    if (byScan) foundByScan++;
    expected.delete(i);
    incomplete.delete(i);
  };
  const recheck = setInterval(() => {
    for (const { dir, name } of [...incomplete.values()]) check(dir, name, false);
    if (found === cfg.count) finish();
  }, RECHECK_INTERVAL_MS);

  const dirs = Array.from({ length: cfg.dirCount }, (_, d) => `d${d}`);
  const watchers = dirs.map((dir) =>
    fs.watch(path.join(cfg.root, dir), (_event, name) => {
      events++;
      if (name !== null) check(dir, name.toString(), false);
      if (found === cfg.count) finish();
    }),
  );
  const scan = setInterval(() => {
    for (const dir of dirs) {
      let names: string[];
      try {
        names = fs.readdirSync(path.join(cfg.root, dir));
      } catch {
        continue;
      }
      for (const name of names) check(dir, name, true);
    }
    if (found === cfg.count) finish();
  }, SCAN_INTERVAL_MS);

  const cpu0 = process.cpuUsage();
  const t0 = nowMs();
  let finished = false;
  function finish(): void {
    if (finished) return;
    finished = true;
    clearInterval(scan);
    clearInterval(recheck);
    for (const w of watchers) w.close();
    const cpu = process.cpuUsage(cpu0);
    const result: PollerResult = { type: 'result', appearedAt, foundByScan, events, cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, wallMs: nowMs() - t0 };
    process.send!(result, () => process.exit(0));
  }
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'stop') finish();
  });
  send({ type: 'ready' });
}

process.once('message', (m: PollerStart) => run(m));
process.on('disconnect', () => process.exit(0));
