// An in-memory JournalSink for capture's unit tests: keeps every record and batch.
import type { JournalSink } from '../../agent/capture/index.ts';
import { entryProblem, type CommitPoint, type DataRecord, type NewRecord } from '../../shared/protocol/index.ts';
import { Waiters } from '../../agent/journal/index.ts';

export class MemoryJournal implements JournalSink {
  readonly records: DataRecord[] = [];
  readonly batches: { first: number; last: number; consistent: boolean; point?: CommitPoint }[] = [];
  headSeq = 0;
  private pending: DataRecord[] = [];
  pendingBytes = 0;
  pendingPayloadBytes = 0;
  get pendingRecords(): number {
    return this.pending.length;
  }
  maxBytes = Infinity;
  heldBytes = 0;
  skippedTo = 0;
  private mark = 0;
  private readonly spaceWaiters = new Waiters();

  /** Paths whose next records fail to append, and how many more times (a path that cannot be journaled for now). */
  readonly failFor = new Map<string, number>();

  append(record: NewRecord): number {
    if ('path' in record) {
      const left = this.failFor.get(record.path) ?? 0;
      if (left > 0) {
        this.failFor.set(record.path, left - 1);
        throw new Error(`injected: ${record.path} cannot be journaled this time`);
      }
      // As the real journal: a name the protocol refuses is never journaled.
      const problem = entryProblem({ ...record, seq: 1 });
      if (problem !== undefined) throw new Error(`invalid record: ${problem}`);
    }
    const seq = this.headSeq + this.pending.length + 1;
    // Capture reuses its read buffers: keep a copy, as the real journal's frame does.
    const r = { ...record, seq } as DataRecord;
    if (r.op === 'write') r.data = Buffer.from(r.data);
    this.pending.push(r);
    this.pendingBytes += 64 + (r.op === 'write' ? r.data.length : 0);
    this.pendingPayloadBytes += r.op === 'write' ? (r.rawLength ?? r.data.length) : 0;
    return seq;
  }

  /** Commits called so far (each with records pending: a batch). */
  commitsCalled = 0;
  /** While set, a commit cuts its batch at once but resolves only when `releaseCommits()` runs (a slow fdatasync). */
  holdCommits = false;
  private heldCommits: (() => void)[] = [];

  /** Resolves every held commit, and holds no more. */
  releaseCommits(): void {
    this.holdCommits = false;
    for (const r of this.heldCommits.splice(0)) r();
  }

  async commit(consistent: boolean, point?: CommitPoint): Promise<{ last: number } | undefined> {
    if (this.pending.length === 0) return undefined;
    this.commitsCalled++;
    const first = this.pending[0]!.seq;
    const last = this.pending[this.pending.length - 1]!.seq;
    this.records.push(...this.pending);
    this.batches.push({ first, last, consistent, ...(point === undefined ? {} : { point }) });
    this.heldBytes += this.pendingBytes;
    this.headSeq = last;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingPayloadBytes = 0;
    if (this.holdCommits) await new Promise<void>((resolve) => this.heldCommits.push(resolve));
    return { last };
  }

  hasSpace(): boolean {
    return this.heldBytes + this.pendingBytes < this.maxBytes;
  }

  waitForSpace(signal?: AbortSignal): Promise<void> {
    if (this.hasSpace()) return Promise.resolve();
    return this.spaceWaiters.wait(signal);
  }

  /** Simulates the passive acknowledging everything. */
  release(): void {
    this.heldBytes = 0;
    this.spaceWaiters.resolveAll();
  }

  async skipTo(seq: number): Promise<void> {
    this.skippedTo = seq;
    this.headSeq = seq;
  }

  /** Records journaled since the last `clear()`. */
  recent(): DataRecord[] {
    return this.records.slice(this.mark);
  }

  ops(): string[] {
    return this.recent().map((r) => (r.op === 'rename' ? `rename ${r.path}>${r.to}` : 'path' in r ? `${r.op} ${r.path}` : r.op));
  }

  /** Starts a new window for `recent()` and `ops()`; every record stays available. */
  clear(): void {
    this.mark = this.records.length;
  }
}
