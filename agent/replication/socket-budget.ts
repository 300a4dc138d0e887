// How much of the bulk data the sender lets wait in the channel socket: what the link drains in
// QUEUE_MS, between MIN_BYTES and MAX_BYTES. Everything sent after it (a heartbeat, a takeover,
// the peer-state message) waits behind all of it: over loopback 8 MiB is milliseconds, over a
// 1 MiB/s link it was 8 s of the passive's view of the active. The drain rate is measured from
// the socket's own write completions while batches queued behind each other: an idle link says
// nothing of its speed. Pure: the sender gives it the times.

/** The time's worth of data to keep queued: enough to ride out the sender's own pauses. */
export const QUEUE_MS = 250;
/** Never less: a few batches, so that a fast link is never starved by a bad measurement. */
export const MIN_BYTES = 512 * 1024;
/** Never more: what the sender allowed before the budget followed the link. */
export const MAX_BYTES = 8 * 1024 * 1024;
/** Weight of a new sample in the smoothed rate (as TCP's SRTT). */
const GAIN = 1 / 8;
/**
 * A sample spans at least this much queued time: completions come in clusters (the kernel takes
 * data as acknowledgements free its buffer), and one write's bytes over a microsecond is no rate.
 */
const SAMPLE_MS = 50;

export class SocketBudget {
  /** Smoothed drain rate, bytes per ms; undefined until measured. */
  private rate: number | undefined;
  /** When the last write completed with more still queued behind it. */
  private busySince: number | undefined;
  /** Bytes and queued time gathered for the next sample. */
  private sampleBytes = 0;
  private sampleMs = 0;

  /**
   * The bytes that may wait in the socket now. Before the link was measured, MIN_BYTES: a link
   * is measured only once the kernel's buffers are full and data queues here, and until then
   * those buffers keep it busy.
   */
  get bytes(): number {
    if (this.rate === undefined) return MIN_BYTES;
    return Math.min(MAX_BYTES, Math.max(MIN_BYTES, Math.round(this.rate * QUEUE_MS)));
  }

  /** The measured drain rate in bytes per second, or undefined before it was measured. */
  get bytesPerSecond(): number | undefined {
    return this.rate === undefined ? undefined : Math.round(this.rate * 1000);
  }

  /**
   * A write of `bytes` left the socket's queue at `at` (ms, monotonic), with `queued` bytes still
   * waiting behind it. The time since the previous completion is that write's time on the link
   * only if it was queued all along: the previous completion left something behind it.
   */
  written(bytes: number, at: number, queued: number): void {
    if (this.busySince !== undefined && at >= this.busySince) {
      this.sampleBytes += bytes;
      this.sampleMs += at - this.busySince;
      if (this.sampleMs >= SAMPLE_MS) {
        const sample = this.sampleBytes / this.sampleMs;
        this.rate = this.rate === undefined ? sample : this.rate + GAIN * (sample - this.rate);
        this.sampleBytes = 0;
        this.sampleMs = 0;
      }
    }
    this.busySince = queued > 0 ? at : undefined;
  }

  /** A new connection: its link may be another. */
  reset(): void {
    this.rate = undefined;
    this.busySince = undefined;
    this.sampleBytes = 0;
    this.sampleMs = 0;
  }
}
