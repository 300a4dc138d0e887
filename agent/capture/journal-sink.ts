// What capture needs from the journal. Capture depends on this, not on the journal's
// implementation, so its unit tests run against an in-memory sink.
import type { DataRecord } from '../../shared/protocol/index.ts';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A record before the journal stamps its sequence number. */
export type RecordInput = DistributiveOmit<DataRecord, 'seq'>;

export interface JournalSink {
  /** Stamps the next sequence number on `record` and buffers it; returns the sequence. */
  append(record: RecordInput): number;
  /** Closes the pending records into a durable batch (no-op when none are pending). */
  commit(consistent: boolean): Promise<unknown>;
  /** Bytes appended since the last commit. */
  readonly pendingBytes: number;
  readonly headSeq: number;
  /** False when the journal reached its size bound: capture waits before reading more. */
  hasSpace(): boolean;
  waitForSpace(): Promise<void>;
  /** Declares that records up to `seq` will never be available (baseline scans). */
  skipTo(seq: number): Promise<void>;
}
