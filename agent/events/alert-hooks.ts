// Alerts: the events an operator must hear of at 3 a.m., handed to a command and/or posted to a
// webhook (keepalived's notify scripts, Pacemaker's alert agents, Patroni's callbacks). offer()
// only queues: a hanging or failing receiver delays nothing but its own next alert. Each
// delivery has a timeout and is retried with a doubling delay; the queue is bounded, and when
// it is full the oldest alert is dropped (and counted) rather than memory grown.
import { spawn } from 'node:child_process';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import { describeCause } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { TandemEvent } from './event.ts';

/** Alerts waiting per target, at most; beyond it the oldest is dropped. */
export const ALERT_QUEUE_MAX = 100;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
/** Output of an alert command kept for the log, at most. */
const COMMAND_OUTPUT_MAX = 2048;

/** The kinds alerted by default (alerts.events). */
export const DEFAULT_ALERT_KINDS = ['failover', 'switchover', 'alarm', 'replication', 'link', 'lag', 'script', 'maintenance'];

const BAD_LINK = new Set(['down', 'dead', 'unreachable']);

/**
 * Whether an event of a listed kind is worth an alert: of the chatty kinds only what matters (a
 * link going down or coming back, a switchover's outcome, an alarm of this node's own).
 */
export function worthAlerting(e: TandemEvent, kinds: readonly string[]): boolean {
  if (!kinds.includes(e.kind)) return false;
  switch (e.kind) {
    case 'switchover':
      return e.details.phase !== 'started';
    case 'link':
      return BAD_LINK.has(e.to ?? '') || BAD_LINK.has(e.from ?? '');
    case 'alarm':
      // The passive's alarm seen from the active: the passive's own agent alerts it.
      return e.details.source !== 'peer';
    default:
      return true;
  }
}

export interface AlertHooksOptions {
  /**
   * A link down (or lag beyond) alert waits this long (the failover threshold, interval ×
   * threshold) and is dropped if the link is back by then: every switchover closes and reopens
   * the channel, a restarted active is briefly behind, and neither is news for the person on
   * call. Once a bad one went out, its recovery goes too.
   */
  holdLinkDownMs?: number | undefined;
  /** alerts.command: run with the event as JSON on stdin and in TANDEM_EVENT_* variables. */
  command?: string | undefined;
  /** alerts.webhook: the event posted as JSON. */
  webhook?: string | undefined;
  kinds: readonly string[];
  timeoutMs: number;
  retries: number;
  pair: string;
  clock: Clock;
  log: Logger;
}

interface Target {
  name: 'command' | 'webhook';
  queue: TandemEvent[];
  busy: boolean;
  deliver: (e: TandemEvent, signal: AbortSignal) => Promise<void>;
}

export class AlertHooks {
  readonly stats = { delivered: 0, failed: 0, dropped: 0 };
  private readonly targets: Target[] = [];
  private readonly log: Logger;
  private readonly timers = new Set<TimerHandle>();
  private readonly inFlight = new Set<AbortController>();
  private stopped = false;
  /** Link down alerts waiting out the hold, and links whose down alert went out, by link name. */
  private readonly heldDown = new Map<string, TimerHandle>();
  private readonly sentDown = new Set<string>();

  constructor(private readonly opts: AlertHooksOptions) {
    this.log = opts.log.child({ component: 'alerts' });
    if (opts.command !== undefined) this.targets.push({ name: 'command', queue: [], busy: false, deliver: (e, s) => this.runCommand(opts.command!, e, s) });
    if (opts.webhook !== undefined) this.targets.push({ name: 'webhook', queue: [], busy: false, deliver: (e, s) => this.postWebhook(opts.webhook!, e, s) });
  }

  get configured(): boolean {
    return this.targets.length > 0;
  }

  /** Queues `e` for every target if it is worth an alert. Never waits. */
  offer(e: TandemEvent): void {
    if (this.stopped || this.targets.length === 0 || !worthAlerting(e, this.opts.kinds)) return;
    if ((this.opts.holdLinkDownMs ?? 0) > 0) {
      if (e.kind === 'link') return this.offerHeld(e, `link ${String(e.details.link)}`, BAD_LINK.has(e.to ?? ''));
      if (e.kind === 'lag') return this.offerHeld(e, 'lag', e.to === 'beyond');
    }
    this.enqueue(e);
  }

  /**
   * A link going bad, or the lag going beyond its bound, is held for holdLinkDownMs and dropped
   * if it is good again by then; once the bad one went out, its recovery goes out too.
   */
  private offerHeld(e: TandemEvent, key: string, bad: boolean): void {
    const held = this.heldDown.get(key);
    if (held !== undefined) {
      // Still held: a recovery (or a new verdict) replaces it; the newest bad one is held afresh.
      held.cancel();
      this.heldDown.delete(key);
      if (!bad) return;
    }
    if (!bad) {
      if (this.sentDown.delete(key)) this.enqueue(e);
      return;
    }
    if (this.sentDown.has(key)) return this.enqueue(e);
    const h = this.opts.clock.setTimeout(() => {
      this.heldDown.delete(key);
      this.timers.delete(h);
      this.sentDown.add(key);
      this.enqueue(e);
    }, this.opts.holdLinkDownMs!);
    this.timers.add(h);
    this.heldDown.set(key, h);
  }

  private enqueue(e: TandemEvent): void {
    for (const t of this.targets) {
      if (t.queue.length >= ALERT_QUEUE_MAX) {
        const lost = t.queue.shift()!;
        this.stats.dropped += 1;
        this.log.warn({ target: t.name, event: lost.seq, kind: lost.kind, queued: ALERT_QUEUE_MAX }, 'alerts: queue full, oldest alert dropped');
      }
      t.queue.push(e);
      this.pump(t);
    }
  }

  private pump(t: Target): void {
    if (t.busy || this.stopped) return;
    const e = t.queue.shift();
    if (e === undefined) return;
    t.busy = true;
    void this.attempt(t, e, 0);
  }

  private async attempt(t: Target, e: TandemEvent, n: number): Promise<void> {
    const ac = new AbortController();
    this.inFlight.add(ac);
    const timer = this.opts.clock.setTimeout(() => ac.abort(new Error(`no answer within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
    let error: string | undefined;
    try {
      await t.deliver(e, ac.signal);
    } catch (err) {
      error = ac.signal.aborted ? describeCause(ac.signal.reason) : describeCause(err);
    } finally {
      timer.cancel();
      this.inFlight.delete(ac);
    }
    if (this.stopped) return;
    if (error === undefined) {
      this.stats.delivered += 1;
      this.log.debug({ target: t.name, event: e.seq, kind: e.kind, attempts: n + 1 }, 'alerts: delivered');
      return this.next(t);
    }
    if (n < this.opts.retries) {
      const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** n);
      this.log.warn({ target: t.name, event: e.seq, kind: e.kind, attempt: n + 1, retryMs: delay, error }, 'alerts: delivery failed, retrying');
      const h = this.opts.clock.setTimeout(() => {
        this.timers.delete(h);
        void this.attempt(t, e, n + 1);
      }, delay);
      this.timers.add(h);
      return;
    }
    this.stats.failed += 1;
    this.log.error({ target: t.name, event: e.seq, kind: e.kind, attempts: n + 1, error }, 'alerts: delivery failed, alert given up');
    this.next(t);
  }

  private next(t: Target): void {
    t.busy = false;
    this.pump(t);
  }

  private body(e: TandemEvent): string {
    return JSON.stringify({ tandem: 1, pair: this.opts.pair, event: e });
  }

  private async postWebhook(url: string, e: TandemEvent, signal: AbortSignal): Promise<void> {
    // No redirects: an alert goes where the config says, nowhere a receiver points it to.
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'tandem-alerts' }, body: this.body(e), redirect: 'manual', signal });
    await res.body?.cancel().catch(() => {});
    if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
  }

  private runCommand(command: string, e: TandemEvent, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, [], {
        stdio: ['pipe', 'ignore', 'pipe'],
        detached: true,
        env: {
          ...process.env,
          TANDEM_PAIR: this.opts.pair,
          TANDEM_NODE: e.node,
          TANDEM_EVENT_SEQ: String(e.seq),
          TANDEM_EVENT_KIND: e.kind,
          TANDEM_EVENT_FROM: e.from ?? '',
          TANDEM_EVENT_TO: e.to ?? '',
          TANDEM_EVENT_TRIGGER: e.trigger,
          TANDEM_EVENT_REASON: e.reason,
        },
      });
      // Before anything else: a spawn failure (EMFILE, ENOENT) is an 'error' event, never a crash.
      child.once('error', (err) => reject(err));
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < COMMAND_OUTPUT_MAX) stderr += d.toString('utf8').slice(0, COMMAND_OUTPUT_MAX - stderr.length);
      });
      child.stdin?.on('error', () => {}); // a command that does not read stdin closes it early
      child.stdin?.end(this.body(e));
      const kill = () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      };
      signal.addEventListener('abort', kill, { once: true });
      child.once('close', (code, sig) => {
        signal.removeEventListener('abort', kill);
        if (code === 0) resolve();
        else reject(new Error(`${sig !== null ? `killed by ${sig}` : `exit code ${code}`}${stderr === '' ? '' : `: ${stderr.trim()}`}`));
      });
    });
  }

  /** Stops delivering: what is queued is dropped, what runs is aborted. */
  stop(): void {
    this.stopped = true;
    for (const h of this.timers) h.cancel();
    this.timers.clear();
    for (const ac of this.inFlight) ac.abort(new Error('agent stopping'));
    for (const t of this.targets) t.queue.length = 0;
  }
}
