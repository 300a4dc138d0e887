// Time as the benchmark measures it.

/** Milliseconds on CLOCK_MONOTONIC, which every process on the machine shares: a child's
 *  timestamps and ours can be subtracted. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
