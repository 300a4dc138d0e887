// How fast the passive has been applying lately, for the estimate of a switchover's drain
// (tandem switchover --dry-run). Fed the applied sequence at every state-tracker refresh; the
// rate is taken over the last few seconds in which something was applied.
const WINDOW_MS = 10_000;
const MAX_SAMPLES = 200;

export class DrainMeter {
  private samples: { at: number; seq: number }[] = [];

  sample(at: number, appliedSeq: number): void {
    const last = this.samples.at(-1);
    // A new generation (or a restart of the count) starts over.
    if (last !== undefined && appliedSeq < last.seq) this.samples = [];
    if (last !== undefined && at - last.at < 100) return;
    this.samples.push({ at, seq: appliedSeq });
    while (this.samples.length > MAX_SAMPLES || (this.samples.length > 2 && at - this.samples[0]!.at > WINDOW_MS)) this.samples.shift();
  }

  /** Records applied per second over the window; undefined while nothing was applied in it. */
  recordsPerSecond(): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (first === undefined || last === undefined || last.at - first.at < 500 || last.seq <= first.seq) return undefined;
    return ((last.seq - first.seq) * 1000) / (last.at - first.at);
  }
}
