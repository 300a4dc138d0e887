// Where a test's listening ports come from: below the kernel's ephemeral range (from 32768 here,
// so an outgoing connection's local end cannot take one before the agent binds it), and a slice
// of it per vitest worker. A port is found free and bound a moment later; in between, a test in
// the other worker could pick the same one (its agent restarting, or choosing at the same time):
// seen once as EADDRINUSE in a full run. Workers never share a slice.

const LOW = 10_000;
const HIGH = 32_000;
/** Slices: more than vitest's workers (maxWorkers 2), so a pool id beyond them still has its own. */
const SLICES = 8;

/** This worker's slice of ports, [lo, hi] inclusive. */
export function testPortRange(): [number, number] {
  const id = Number(process.env.VITEST_POOL_ID ?? '1');
  const slice = Number.isInteger(id) && id >= 1 ? (id - 1) % SLICES : 0;
  const size = Math.floor((HIGH - LOW) / SLICES);
  return [LOW + slice * size, LOW + (slice + 1) * size - 1];
}
