// Time as an injected dependency, so that decisions with timeouts are tested with a fake
// clock instead of sleeps. Components take a Clock; only main.ts picks the system one.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch (wall clock: comparable with file mtimes). */
  now(): number;
  /** A monotonic reading in milliseconds, for durations. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Calls `fn` every `ms` until cancelled (the first call after `ms`). */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Resolves after `ms`: for the rare wait that cannot be a notification. */
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t) };
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** A clock that only moves when told to; timers fire in due order during `advance`. */
export class FakeClock implements Clock {
  private nowMs: number;
  private readonly startMs: number;
  private timers: { at: number; id: number; fn: () => void }[] = [];
  private nextId = 0;

  constructor(startMs = 1_700_000_000_000) {
    this.nowMs = startMs;
    this.startMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  monotonic(): number {
    return this.nowMs - this.startMs;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ at: this.nowMs + Math.max(0, ms), id, fn });
    return { cancel: () => (this.timers = this.timers.filter((t) => t.id !== id)) };
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    const every = Math.max(1, ms);
    let current: TimerHandle | undefined;
    let cancelled = false;
    const arm = () => {
      current = this.setTimeout(() => {
        if (cancelled) return;
        arm();
        fn();
      }, every);
    };
    arm();
    return {
      cancel: () => {
        cancelled = true;
        current?.cancel();
      },
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /**
   * Like `advance`, but lets promises settle (real I/O included) after each timer that fires,
   * so that async code woken by a timer (a `sleep` ending) runs before the next one is due.
   */
  async advanceAsync(ms: number, settle: () => Promise<void> = () => new Promise((r) => setImmediate(r))): Promise<void> {
    const target = this.nowMs + ms;
    do await settle();
    while (this.fireNext(target));
    this.nowMs = target;
    await settle();
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.nowMs + ms;
    while (this.fireNext(target));
    this.nowMs = target;
  }

  /** Fires the earliest timer due by `target` (time moves to it); false when none is. */
  private fireNext(target: number): boolean {
    this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
    const next = this.timers[0];
    if (next === undefined || next.at > target) return false;
    this.timers.shift();
    this.nowMs = next.at;
    next.fn();
    return true;
  }

  pendingTimers(): number {
    return this.timers.length;
  }
}
