// Probes the peer's presence server every interval, one probe at a time, and folds the
// verdicts into a PresenceView. It logs each state change once, never a probe. It reports what
// it saw and decides nothing: whether 'unreachable' or 'invalid' justifies a failover is the
// failover decision's call.
import { systemClock, type Clock } from '../../shared/clock.ts';
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { checkHost, checkName, checkPairKey, checkPort, checkPositiveInt, invalidOption } from './link-options.ts';
import { PeriodicRun } from './periodic-run.ts';
import { probePresence, type PresenceConnect } from './presence-probe.ts';
import { derivePresenceKey } from './presence-proof.ts';
import { applyPresenceResult, initialPresenceView, type PresenceProbeResult, type PresenceState, type PresenceView } from './presence-state.ts';
import type { LinkChange } from './public-link-state.ts';

export interface PresenceProberOptions {
  /** The peer's public presence address; leave host or port undefined when it has none. */
  host: string | undefined;
  port: number | undefined;
  pair: string;
  /** The node expected to answer. */
  peer: string;
  self: string;
  /** The pair key. */
  key: Buffer;
  intervalMs: number;
  timeoutMs: number;
  clock?: Clock;
  log: Logger;
  connect?: PresenceConnect;
}

export type PresenceChangeListener = (view: PresenceView, change: LinkChange<PresenceState>) => void;

const HINTS: Record<string, string> = {
  TANDEM_ERR_AUTH_FAILED: 'both nodes must hold the same pair key file and pair id; see docs/errors.md',
  TANDEM_ERR_PEER_UNEXPECTED: "nodes.<peer>.public must be the peer's presence address; check nodes.* on both nodes",
  TANDEM_ERR_PROTOCOL: "nodes.<peer>.public must point at the peer agent's presence address, not another service",
};

export class PresenceProber {
  private readonly opts: PresenceProberOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly presenceKey: Buffer;
  private readonly run: PeriodicRun | undefined;
  private readonly listeners = new Set<PresenceChangeListener>();
  private current: PresenceView;
  private started = false;

  constructor(opts: PresenceProberOptions) {
    const op = 'start the presence probes';
    checkName(op, 'pair', opts.pair);
    checkName(op, 'peer', opts.peer);
    checkName(op, 'self', opts.self);
    if (opts.peer === opts.self) throw invalidOption(op, 'peer', `the peer must be another node than ${JSON.stringify(opts.self)}`);
    checkPairKey(op, opts.key);
    checkPositiveInt(op, 'intervalMs', opts.intervalMs);
    checkPositiveInt(op, 'timeoutMs', opts.timeoutMs);
    const configured = opts.host !== undefined && opts.port !== undefined;
    if (configured) {
      checkHost(op, 'host', opts.host);
      checkPort(op, 'port', opts.port, false);
    }
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log.child({ component: 'links', peer: opts.peer });
    this.presenceKey = derivePresenceKey(opts.key, opts.pair);
    this.current = initialPresenceView(this.clock.now(), configured);
    this.run = configured
      ? new PeriodicRun({
          clock: this.clock,
          intervalMs: opts.intervalMs,
          step: (signal) => this.probe(signal),
          onError: (err) => this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'presence: a probe failed unexpectedly'),
        })
      : undefined;
  }

  /** Starts probing (the first probe at once). Without a peer address it only says so, once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.run === undefined) {
      this.log.warn(
        { state: 'unconfigured' },
        'presence: the peer has no public address (nodes.<peer>.public); this node cannot tell a gone peer from a cut channel',
      );
      return;
    }
    this.run.start();
  }

  /** Stops probing; resolves once the probe in progress (if any) has closed its socket. */
  async stop(): Promise<void> {
    this.started = false;
    await this.run?.stop();
  }

  view(): PresenceView {
    return this.current;
  }

  /** Called on every state change; the latest answer is in view().lastAnswer. Returns the unsubscribe. */
  onChange(cb: PresenceChangeListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private async probe(signal: AbortSignal): Promise<void> {
    const { host, port } = this.opts;
    if (host === undefined || port === undefined) return;
    const result = await probePresence(
      {
        host,
        port,
        pair: this.opts.pair,
        peer: this.opts.peer,
        self: this.opts.self,
        presenceKey: this.presenceKey,
        timeoutMs: this.opts.timeoutMs,
        clock: this.clock,
        ...(this.opts.connect === undefined ? {} : { connect: this.opts.connect }),
      },
      signal,
    );
    // A probe cut short by stop() says nothing about the peer.
    if (signal.aborted) return;
    const { view, change } = applyPresenceResult(this.current, result, this.clock.now());
    this.current = view;
    if (change === undefined) return;
    this.report(result, change);
    for (const cb of this.listeners) cb(view, change);
  }

  private report(r: PresenceProbeResult, change: LinkChange<PresenceState>): void {
    const fields = { from: change.from, to: change.to, reason: change.reason, latencyMs: r.latencyMs };
    switch (r.verdict) {
      case 'alive': {
        const a = r.answer;
        this.log.info({ ...fields, role: a?.role, epoch: a?.epoch, serving: a?.serving, publicState: a?.publicState }, 'presence: the peer agent answers');
        return;
      }
      case 'stalled':
        this.log.warn(fields, 'presence: the peer host accepts connections but its agent does not answer (stalled, not gone)');
        return;
      case 'dead':
        this.log.warn(fields, 'presence: the peer host is up but its agent is gone');
        return;
      case 'unreachable':
        this.log.warn(fields, 'presence: the peer host cannot be reached');
        return;
      case 'invalid': {
        const code = r.code ?? 'TANDEM_ERR_PROTOCOL';
        const err = new TandemError({ code, op: `probe the presence of ${this.opts.peer} at ${this.opts.host}:${this.opts.port}`, reason: r.error ?? 'invalid answer', hint: HINTS[code] });
        this.log.error({ ...fields, code, err }, 'presence: the peer address answers, but not as the expected agent');
        return;
      }
      case 'error':
        this.log.warn(fields, 'presence: this node cannot probe its peer');
        return;
    }
  }
}
