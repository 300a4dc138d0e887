// Both agents' status documents sampled at a fixed interval while a measurement runs: the
// agents' own account of where the time went (capture, journal, channel, apply), to read
// beside what the benchmark measured from outside.
import type { AgentStatus } from '../agent/control/index.ts';
import type { BenchPair } from './bench-pair.ts';
import { nowMs, sleep } from './clock.ts';

export interface TimelineSample {
  at: number;
  alpha: AgentStatus;
  beta: AgentStatus;
}

export class StatusTimeline {
  private readonly samples: TimelineSample[] = [];
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly pair: BenchPair,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.running = (async () => {
      while (!this.stopping) {
        const next = nowMs() + this.intervalMs;
        try {
          const [alpha, beta] = await Promise.all([this.pair.status('alpha'), this.pair.status('beta')]);
          this.samples.push({ at: nowMs(), alpha, beta });
        } catch {
          // a missed sample is only a gap in the timeline
        }
        await sleep(Math.max(0, next - nowMs()));
      }
    })();
  }

  /** Stops after one last sample, so the timeline ends in the state the caller waited for. */
  async stop(): Promise<TimelineSample[]> {
    this.stopping = true;
    await this.running;
    try {
      const [alpha, beta] = await Promise.all([this.pair.status('alpha'), this.pair.status('beta')]);
      this.samples.push({ at: nowMs(), alpha, beta });
    } catch {
      // the timeline ends where it ends
    }
    return this.samples;
  }
}
