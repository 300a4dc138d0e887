// Process-wide counts of costly I/O calls, read by the metrics (agent/events/metrics.ts). Plain
// numbers bumped where the calls are made: cheaper than any registry, and nothing to wire.
export const ioCounters = {
  /** fsync/fdatasync calls of the journal, the receive log and the applier. */
  fsyncs: 0,
};
