// What capture needs from the journal. Capture depends on this, not on the journal's
// implementation, so its unit tests run against an in-memory sink.
import type { CommitPoint, NewRecord } from '../../shared/protocol/index.ts';


export interface JournalSink {
  /**
   * Stamps the next sequence number on `record` and buffers it; returns the sequence. `ref`: an
   * uncompressed write of bytes read from its file (inode `ino`), which the journal may keep as a
   * reference to them instead (docs/journal.md, "Referenced blocks").
   */
  append(record: NewRecord, ref?: { ino: number }): number;
  /** Whether a write appended with a `ref` now would be kept as a reference (optional: a sink may never). */
  readonly refsStored?: boolean;
  /**
   * Resolves once at most `limit` bytes are not acknowledged by the passive, or references are
   * no longer stored: a large file read as references must not outrun what the cache holds.
   */
  waitForAcks?(limit: number, signal?: AbortSignal): Promise<void>;
  /**
   * Closes the pending records into a durable batch (no-op when none are pending); `point`
   * marks it as part (or the end) of a consistency point. Resolves with the batch's `last`
   * sequence when one was made.
   */
  commit(consistent: boolean, point?: CommitPoint): Promise<{ last: number } | undefined>;
  /** Bytes appended since the last commit. */
  readonly pendingBytes: number;
  /** Bytes of file data (blocks, inflated) appended since the last commit. */
  readonly pendingPayloadBytes: number;
  /** Records appended since the last commit. */
  readonly pendingRecords: number;
  readonly headSeq: number;
  /** False when the journal reached its size bound: capture waits before reading more. */
  hasSpace(): boolean;
  /** Resolves once the journal has room again; rejects with `signal`'s reason when it aborts. */
  waitForSpace(signal?: AbortSignal): Promise<void>;
  /** Declares that records up to `seq` will never be available (baseline scans). */
  skipTo(seq: number): Promise<void>;
}
