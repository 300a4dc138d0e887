// Long work on the event loop, cut into slices: once a slice has held the loop for its length,
// the next breathe() lets the loop poll once (timers, sockets: the heartbeat, acknowledgements)
// before the work goes on. It never sleeps: setImmediate runs right after the poll.
import { performance } from 'node:perf_hooks';

/** How long a slice may hold the event loop: well under a heartbeat interval. */
export const SLICE_MS = 5;

export class TimeSlice {
  private start = performance.now();

  constructor(private readonly ms = SLICE_MS) {}

  /** Starts a new slice now (after the loop was let go by other means). */
  restart(): void {
    this.start = performance.now();
  }

  /** Resolves at once while the slice lasts; after it, once the event loop has polled. */
  async breathe(): Promise<void> {
    if (performance.now() - this.start <= this.ms) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.start = performance.now();
  }
}
