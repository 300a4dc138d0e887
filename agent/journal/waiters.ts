// Callers waiting for one condition (room in the journal, acknowledgements), released or failed
// all at once; a caller may give up through an abort signal, and then leaves the queue. A waiter
// released takes its abort listener off the signal: capture waits thousands of times on one
// signal, which must not keep a listener for each.
export class Waiters {
  private queue: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  wait(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.queue = this.queue.filter((x) => x !== w);
        reject(signal!.reason);
      };
      const w = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.queue.push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  resolveAll(): void {
    for (const w of this.queue.splice(0)) w.resolve();
  }

  rejectAll(err: unknown): void {
    for (const w of this.queue.splice(0)) w.reject(err);
  }
}
