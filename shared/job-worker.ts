// One worker thread that does jobs for the main thread one at a time, in the order sent (system
// calls that would otherwise hold its event loop), started on first use. A job may be sent while
// another is out: it waits in the thread's queue, so the thread goes on to it at once. Its code
// is plain JavaScript evaluated as a script, so that it runs from the sources under tests and
// from the build alike with nothing to resolve. It must never keep the process alive, and never
// hide a failure: once the thread fails (an error, an exit), every job waiting or to come is
// refused with that failure, and the caller does the work itself from then on.
import { Worker, type TransferListItem } from 'node:worker_threads';

export class JobWorker<Req, Res> {
  private worker: Worker | undefined;
  /** Jobs out, oldest first: the thread answers them in order. */
  private readonly pending: { resolve: (r: Res) => void; reject: (err: Error) => void }[] = [];
  private failed: Error | undefined;

  /** `source`: a script that answers each message on parentPort with one message. */
  constructor(
    private readonly name: string,
    private readonly source: string,
  ) {}

  /** False once the thread failed or was closed. */
  get usable(): boolean {
    return this.failed === undefined;
  }

  /** True while a job is out. */
  get busy(): boolean {
    return this.pending.length > 0;
  }

  /**
   * Sends one job (`transfer`: buffers handed over, unusable here after) and resolves with its
   * answer; after the jobs already out.
   */
  run(req: Req, transfer: readonly TransferListItem[] = []): Promise<Res> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const w = this.start();
    return new Promise<Res>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      w.postMessage(req, [...transfer]);
    });
  }

  /** Starts the thread now (it takes tens of milliseconds), when a job is known to come soon. */
  warm(): void {
    if (this.failed === undefined) this.start();
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.fail(new Error(`${this.name}: closed`));
    if (w !== undefined) await w.terminate();
  }

  private start(): Worker {
    if (this.worker !== undefined) return this.worker;
    // A small heap: the jobs' bytes live in buffers outside it, and a worker's default heap
    // would let its garbage grow to tens of MiB of the agent's memory.
    const w = new Worker(this.source, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 } });
    // Only ever works for a job its caller awaits: never what keeps the agent alive.
    w.unref();
    w.on('message', (m: Res) => this.pending.shift()?.resolve(m));
    w.on('error', (err) => this.fail(err instanceof Error ? err : new Error(String(err))));
    w.on('exit', (code) => this.fail(new Error(`${this.name}: the thread exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}
