// Callers waiting for one condition (room in the journal), released or failed all at once; a
// caller may give up through an abort signal, and then leaves the queue.
export class Waiters {
  private queue: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  wait(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w = { resolve, reject };
      this.queue.push(w);
      signal?.addEventListener(
        'abort',
        () => {
          this.queue = this.queue.filter((x) => x !== w);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }

  resolveAll(): void {
    for (const w of this.queue.splice(0)) w.resolve();
  }

  rejectAll(err: unknown): void {
    for (const w of this.queue.splice(0)) w.reject(err);
  }
}
