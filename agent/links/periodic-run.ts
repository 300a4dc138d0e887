// Runs one asynchronous step every interval, start to start, never two at once: a step that
// takes longer than the interval delays the next instead of piling up behind it. stop() aborts
// the step in progress and resolves once it has ended, so no socket or child outlives it.
import type { Clock, TimerHandle } from '../../shared/clock.ts';

export interface PeriodicRunOptions {
  clock: Clock;
  intervalMs: number;
  /** One step. It must honour `signal` (stop) and settle on its own; it should not throw. */
  step: (signal: AbortSignal) => Promise<void>;
  /** A step that threw anyway: a bug, reported here, and the loop carries on. */
  onError: (err: unknown) => void;
}

export class PeriodicRun {
  private running = false;
  private timer: TimerHandle | undefined;
  private inFlight: AbortController | undefined;
  private current: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PeriodicRunOptions) {}

  /** Runs the first step at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    this.inFlight?.abort();
    await this.current;
  }

  private tick(): void {
    this.timer = undefined;
    if (!this.running) return;
    const { clock, intervalMs, step, onError } = this.opts;
    const startedAt = clock.monotonic();
    const ac = new AbortController();
    this.inFlight = ac;
    this.current = (async () => {
      try {
        await step(ac.signal);
      } catch (err) {
        onError(err);
      }
      this.inFlight = undefined;
      if (!this.running) return;
      const waitMs = Math.max(0, intervalMs - (clock.monotonic() - startedAt));
      this.timer = clock.setTimeout(() => this.tick(), waitMs);
    })();
  }
}
