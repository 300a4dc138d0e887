// The node's recent events, bounded, in memory and in one NDJSON file in the state directory, so
// that what happened before a restart can still be read after it (and seq goes on from there).
// The first line names the history (a random id): a client that sees another id knows that the
// numbering started over (the file was lost) and reads from the beginning.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import { describeCause, errnoOf } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { isEvent, type TandemEvent } from './event.ts';

export const EVENTS_FILE = 'events.ndjson';
/** A history file larger than this is read from its tail only (it is rewritten well below it). */
const MAX_READ_BYTES = 32 * 1024 * 1024;
/** A line longer than this is not an event the tracker wrote: skipped. */
const MAX_LINE_BYTES = 64 * 1024;
/** Most events one answer of since() holds; the client asks again from the last seq. */
export const MAX_EVENTS_PER_READ = 1000;

export interface EventHistoryOptions {
  /** The NDJSON file (stateDir/events.ndjson). */
  file: string;
  /** Events kept (events.keep): older ones are dropped from memory and, in batches, from disk. */
  keep: number;
  clock: Clock;
  log: Logger;
}

export class EventHistory {
  readonly id: string;
  private readonly events: TandemEvent[] = [];
  private nextSeq: number;
  private fd: number | undefined;
  private linesOnDisk: number;
  private writeFailed = false;
  private readonly waiters = new Set<{ after: number; resolve: () => void; timer: TimerHandle }>();
  private readonly log: Logger;

  private constructor(
    private readonly opts: EventHistoryOptions,
    id: string,
    events: TandemEvent[],
    lines: number,
  ) {
    this.log = opts.log.child({ component: 'events' });
    this.id = id;
    this.events = events.slice(-opts.keep);
    this.nextSeq = (events.at(-1)?.seq ?? 0) + 1;
    this.linesOnDisk = lines;
  }

  /** Reads the history back (a missing or unreadable file starts a new one), ready to append. */
  static open(opts: EventHistoryOptions): EventHistory {
    const read = readHistory(opts.file);
    if (read.problem !== undefined) opts.log.child({ component: 'events' }).warn({ file: opts.file, problem: read.problem }, 'events: history not read back; a new one starts');
    const h = new EventHistory(opts, read.id ?? crypto.randomBytes(8).toString('hex'), read.events, read.lines);
    if (read.id === undefined || read.skipped > 0) h.compact();
    else h.openForAppend();
    return h;
  }

  /** The seq of the newest event (0: none yet). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** The seq of the oldest event still kept (lastSeq + 1 when none). */
  get firstSeq(): number {
    return this.events[0]?.seq ?? this.nextSeq;
  }

  /** Stamps the next seq on `e`, keeps it and writes it; never throws (a failed write is logged). */
  append(e: Omit<TandemEvent, 'seq'>): TandemEvent {
    const event: TandemEvent = { seq: this.nextSeq++, ...e };
    this.events.push(event);
    if (this.events.length > this.opts.keep) this.events.splice(0, this.events.length - this.opts.keep);
    this.write(`${JSON.stringify(event)}\n`);
    // Rewritten once twice the bound is on disk: one rewrite per `keep` events, not per event.
    if (this.linesOnDisk > 2 * this.opts.keep) this.compact();
    for (const w of [...this.waiters]) {
      if (event.seq > w.after) {
        this.waiters.delete(w);
        w.timer.cancel();
        w.resolve();
      }
    }
    return event;
  }

  /** Events with seq > `after`, oldest first, at most `limit`. */
  since(after: number, limit = MAX_EVENTS_PER_READ): TandemEvent[] {
    const i = this.events.findIndex((e) => e.seq > after);
    return i < 0 ? [] : this.events.slice(i, i + Math.max(1, Math.min(limit, MAX_EVENTS_PER_READ)));
  }

  /** The newest event kept that matches. */
  findLast(pred: (e: TandemEvent) => boolean): TandemEvent | undefined {
    return this.events.findLast(pred);
  }

  /** Resolves once an event with seq > `after` exists, or after `timeoutMs` (long polling). */
  wait(after: number, timeoutMs: number): Promise<void> {
    if (this.lastSeq > after || timeoutMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const w = {
        after,
        resolve,
        timer: this.opts.clock.setTimeout(() => {
          this.waiters.delete(w);
          resolve();
        }, timeoutMs),
      };
      this.waiters.add(w);
    });
  }

  close(): void {
    for (const w of this.waiters) {
      w.timer.cancel();
      w.resolve();
    }
    this.waiters.clear();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private header(): string {
    return `${JSON.stringify({ history: this.id, created: this.opts.clock.now() })}\n`;
  }

  private openForAppend(): void {
    try {
      this.fd = fs.openSync(this.opts.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      this.failed('open', err);
    }
  }

  private write(text: string): void {
    if (this.fd === undefined) return;
    try {
      // Not fsynced: the events of a clean stop are all there; a machine crash may lose the last
      // few, never the node's state, which lives elsewhere.
      fs.writeSync(this.fd, text);
      this.linesOnDisk += 1;
      this.writeFailed = false;
    } catch (err) {
      this.failed('write', err);
    }
  }

  /** Rewrites the file with the header and the kept events (temp file, rename, directory sync). */
  private compact(): void {
    const tmp = `${this.opts.file}.tmp`;
    try {
      if (this.fd !== undefined) fs.closeSync(this.fd);
      this.fd = undefined;
      fs.rmSync(tmp, { force: true });
      const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      try {
        fs.writeSync(fd, this.header() + this.events.map((e) => `${JSON.stringify(e)}\n`).join(''));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.opts.file);
      this.linesOnDisk = this.events.length;
    } catch (err) {
      this.failed('rewrite', err);
    }
    this.openForAppend();
  }

  private failed(op: string, err: unknown): void {
    if (this.writeFailed) return;
    this.writeFailed = true;
    this.log.error({ err, code: 'TANDEM_ERR_STATE_IO', file: this.opts.file, op, errno: errnoOf(err) }, 'events: cannot write the history; events go on in memory');
  }
}

interface ReadBack {
  id: string | undefined;
  events: TandemEvent[];
  lines: number;
  /** Lines that were not events (a line torn by a crash, a foreign edit). */
  skipped: number;
  problem?: string;
}

function readHistory(file: string): ReadBack {
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(size, MAX_READ_BYTES);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      text = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { id: undefined, events: [], lines: 0, skipped: 0 };
    return { id: undefined, events: [], lines: 0, skipped: 0, problem: describeCause(err) };
  }
  const lines = text.split('\n').filter((l) => l !== '');
  let id: string | undefined;
  const events: TandemEvent[] = [];
  let skipped = 0;
  for (const line of lines) {
    let v: unknown;
    try {
      v = line.length > MAX_LINE_BYTES ? undefined : JSON.parse(line);
    } catch {
      v = undefined;
    }
    const h = v as { history?: unknown } | undefined;
    if (id === undefined && events.length === 0 && typeof h?.history === 'string' && /^[0-9a-f]{16}$/.test(h.history)) id = h.history;
    // Out of order means another writer: what follows the disorder is not this history's.
    else if (isEvent(v) && (events.length === 0 || v.seq > events.at(-1)!.seq)) events.push(v);
    else skipped += 1;
  }
  return { id, events, lines: lines.length, skipped, ...(id === undefined && lines.length > 0 ? { problem: `${path.basename(file)} has no history header` } : {}) };
}
