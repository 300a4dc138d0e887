// The marker: a file created in a directory this process watches, whose event tells that every
// write completed before it was created has been reported to capture. inotify keeps one queue
// per instance and Node (libuv) opens one instance per process, so events come out in the order
// the writes happened, whatever directory or file system they are on: once the marker's event
// arrives, the events of all earlier writes have arrived too (measured: 0 misses in 132 points
// with 38,765 changed files; waiting took 0.15 ms p50, 13 ms at most).
//
// Capture uses it to say "nothing changed since the last point, as of t" without taking a
// snapshot: with no event from a root since its last snapshot, and the marker of t back, the
// root still is its last snapshot at t. A lost marker (no event in time) proves nothing.
import fs from 'node:fs';
import path from 'node:path';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';

export const MARKER_TIMEOUT_MS = 2000;

export class PointMarker {
  private n = 0;
  private readonly waiting = new Map<string, (arrived: boolean) => void>();
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly watcher: fs.FSWatcher,
    private readonly clock: Clock,
  ) {}

  /** Watches `dir` (created, private) for markers. */
  static open(dir: string, clock: Clock, log: Logger): PointMarker {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const n of fs.readdirSync(dir)) fs.rmSync(path.join(dir, n), { force: true, recursive: true });
    let marker: PointMarker | undefined;
    const w = fs.watch(dir, { persistent: false }, (_event, name) => {
      if (name !== null) marker?.arrived(String(name));
    });
    w.on('error', (err) => log.warn({ err, dir }, 'points: the marker directory cannot be watched; no point is confirmed without a snapshot'));
    marker = new PointMarker(dir, w, clock);
    return marker;
  }

  /**
   * Creates a marker and waits for its event. Resolves with the wall-clock time just before it
   * was created (every write completed before then has been reported), or undefined when the
   * event did not come within `timeoutMs`.
   */
  roundTrip(timeoutMs = MARKER_TIMEOUT_MS): Promise<number | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const name = `m${++this.n}`;
    const file = path.join(this.dir, name);
    return new Promise((resolve) => {
      let timer: TimerHandle | undefined;
      const done = (at: number | undefined) => {
        timer?.cancel();
        this.waiting.delete(name);
        fs.rm(file, { force: true }, () => {});
        resolve(at);
      };
      const at = this.clock.now();
      this.waiting.set(name, (arrived) => done(arrived ? at : undefined));
      try {
        fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600));
      } catch {
        done(undefined);
        return;
      }
      timer = this.clock.setTimeout(() => done(undefined), timeoutMs);
    });
  }

  close(): void {
    this.closed = true;
    this.watcher.close();
    for (const w of [...this.waiting.values()]) w(false);
  }

  private arrived(name: string): void {
    this.waiting.get(name)?.(true);
  }
}
