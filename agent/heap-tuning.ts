// How far the agent's JavaScript heap may grow past what it really holds. V8 lets the old
// generation grow up to 4× its live data between two full collections while allocation is
// fast, and an agent allocates fast whenever much moves: an initial synchronisation of 100,000
// files peaked at 409-477 MiB RSS on the active with ~120 MiB live (heap snapshot), 355-388 MiB
// on the passive with ~100 MiB live. A growth factor of 1.5 took the peaks to 328-344 / 280-288
// MiB at no CPU cost that showed ((e) and (b) side by side, bench/results/phase1.md). It must
// never change what the agent computes: only when the collector runs.
import v8 from 'node:v8';

/** The old generation may grow by this many percent over its live data before a full collection. */
export const HEAP_GROWING_PERCENT = 50;

/**
 * Sets the heap growth factor for this process, unless the operator started node with one of
 * their own (`node --heap-growing-percent=N tandem.mjs agent`): theirs stands. Returns whether
 * it set it. Called once, before the agent allocates anything of size.
 */
export function tuneHeap(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent\b/.test(a))) return false;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
