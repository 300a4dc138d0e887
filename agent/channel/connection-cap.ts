// Bounds what strangers can hold on a listening port: at most `max` sockets at once, each for at
// most `lifetimeMs`. A new socket beyond the cap evicts the oldest, not itself: a legitimate
// client (the peer's prober, the peer's dial) finishes in milliseconds, while the idle sockets
// of a flood are the old ones. Evictions are reported at most once per interval.
import type { Socket } from 'node:net';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import { LogLimiter } from './log-limiter.ts';

export interface ConnectionCapOptions {
  max: number;
  lifetimeMs: number;
  clock: Clock;
  /** Called with how many were evicted since it was last called, at most once per LogLimiter interval. */
  onEvicted: (evicted: number) => void;
}

export class ConnectionCap {
  /** Sockets held, oldest first, each with the timer that drops it. */
  private readonly sockets = new Map<Socket, TimerHandle>();
  private readonly limiter: LogLimiter;
  private evicted = 0;

  constructor(private readonly opts: ConnectionCapOptions) {
    this.limiter = new LogLimiter(opts.clock);
  }

  get size(): number {
    return this.sockets.size;
  }

  /** Holds `socket` under the cap (evicting the oldest beyond it) until it closes, is released, or outlives its time. */
  admit(socket: Socket): void {
    while (this.sockets.size >= this.opts.max) {
      const [oldest, timer] = this.sockets.entries().next().value as [Socket, TimerHandle];
      timer.cancel();
      this.sockets.delete(oldest);
      oldest.destroy();
      this.evicted += 1;
    }
    if (this.evicted > 0 && this.limiter.admit('evicted') !== undefined) {
      this.opts.onEvicted(this.evicted);
      this.evicted = 0;
    }
    this.sockets.set(
      socket,
      this.opts.clock.setTimeout(() => {
        if (this.sockets.delete(socket)) socket.destroy();
      }, this.opts.lifetimeMs),
    );
    socket.once('close', () => this.release(socket));
  }

  /** No longer counted nor timed (closed, or authenticated and now someone else's to bound). */
  release(socket: Socket): void {
    this.sockets.get(socket)?.cancel();
    this.sockets.delete(socket);
  }

  /** Drops every socket held. */
  destroyAll(): void {
    for (const [socket, timer] of this.sockets) {
      timer.cancel();
      socket.destroy();
    }
    this.sockets.clear();
  }
}
