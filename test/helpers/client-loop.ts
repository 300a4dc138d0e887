// Measures an HTTP service from the outside, the way its users see it: requests at a steady
// rate whether or not the previous one came back, each with its own timeout. Failover tests and
// benchmarks read the longest gap between two successful answers and which node served them.
import http from 'node:http';
import https from 'node:https';

export interface ClientLoopOptions {
  url: string;
  /** Requests sent per second, on a fixed grid (default 20). */
  ratePerSecond?: number;
  /** A request that has not fully answered by then counts as failed (default 1000). */
  timeoutMs?: number;
  /** Reuse connections (default false). A new connection per request is what a client that
   *  reconnects sees during a failover: each request tests the address afresh. With keep-alive,
   *  requests on a connection to the dead node fail until it is noticed. */
  keepAlive?: boolean;
  /** The response header that names the serving node (the demo application sets it). */
  servedByHeader?: string;
  /** Makes request number n (from 0) something else than a GET of `url`, e.g. a PUT of a new
   *  file; its `tag` is kept in the record, so a test can tell which writes were acknowledged. */
  request?: (n: number) => { method: string; path: string; body?: string | Buffer; tag?: string };
}

/** One request, as the client saw it. Times are epoch milliseconds from a monotonic clock. */
export interface ClientRequestRecord {
  startedAt: number;
  /** When the response was fully read, or the request failed or timed out. */
  endedAt: number;
  latencyMs: number;
  /** A 2xx status with the whole body read. */
  ok: boolean;
  status?: number;
  servedBy?: string;
  /** Why it failed: an errno code (`ECONNREFUSED`), `timeout`, `HTTP 503`, `response cut`. */
  error?: string;
  /** The tag of a request made by `options.request`. */
  tag?: string;
}

export interface ClientLoopGap {
  fromMs: number;
  toMs: number;
  durationMs: number;
}

export interface ServedByRun {
  node: string;
  /** Response times of the first and the last success of the run. */
  from: number;
  to: number;
  count: number;
}

export interface ClientLoopReport {
  url: string;
  ratePerSecond: number;
  startedAt: number;
  stoppedAt: number;
  requests: number;
  ok: number;
  failed: number;
  /** Longest time without a successful response, counted from the first success: between two
   *  successes (by response time), or from the last success to the stop. The whole run when
   *  nothing succeeded. */
  longestGapMs: number;
  longestGap?: ClientLoopGap;
  /** Every such period longer than twice the request interval, in order. */
  gaps: ClientLoopGap[];
  /** Consecutive successes served by the same node, in response order. */
  servedBy: ServedByRun[];
  /** When the first request that failed was sent. */
  firstFailureAt?: number;
  /** Response time of the first success sent after the last failed request: from then on the
   *  service answered every time. Absent when nothing failed or it never came back. */
  recoveredAt?: number;
  /** Failures by cause. */
  errors: Record<string, number>;
  records: ClientRequestRecord[];
}

/** Names the node for responses that did not carry the header. */
export const UNKNOWN_NODE = '(none)';

/** Wall-clock milliseconds that never go backwards, so gaps are not bent by clock steps. */
const epochNow = () => performance.timeOrigin + performance.now();

export class ClientLoop {
  readonly url: URL;
  readonly ratePerSecond: number;
  readonly timeoutMs: number;
  readonly keepAlive: boolean;
  private readonly intervalMs: number;
  private readonly header: string;
  private readonly agent: http.Agent | false;
  private readonly makeRequest: ClientLoopOptions['request'];
  private sent = 0;
  private readonly records: ClientRequestRecord[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private nextAt = 0;
  private startedAt: number | undefined;
  private stoppedAt: number | undefined;

  /** Throws on a bad option, before anything runs. */
  constructor(opts: ClientLoopOptions) {
    this.url = new URL(opts.url);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new Error(`ClientLoop: url must be http or https, got ${opts.url}`);
    this.ratePerSecond = opts.ratePerSecond ?? 20;
    this.timeoutMs = opts.timeoutMs ?? 1_000;
    if (!(this.ratePerSecond > 0 && this.ratePerSecond <= 1_000)) throw new RangeError(`ClientLoop: ratePerSecond must be in (0, 1000], got ${this.ratePerSecond}`);
    if (!(this.timeoutMs > 0)) throw new RangeError(`ClientLoop: timeoutMs must be > 0, got ${this.timeoutMs}`);
    this.keepAlive = opts.keepAlive ?? false;
    this.intervalMs = 1_000 / this.ratePerSecond;
    this.header = (opts.servedByHeader ?? 'x-served-by').toLowerCase();
    const Agent = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    // `false` gives each request its own throwaway agent: a fresh connection, closed after it.
    this.agent = this.keepAlive ? new Agent({ keepAlive: true }) : false;
    this.makeRequest = opts.request;
  }

  start(): void {
    if (this.startedAt !== undefined) throw new Error('ClientLoop: already started');
    this.startedAt = epochNow();
    this.nextAt = performance.now();
    this.tick();
  }

  /** Stops sending, waits for the requests in flight (each ends by its timeout), and reports. */
  async stop(): Promise<ClientLoopReport> {
    if (this.startedAt === undefined) throw new Error('ClientLoop: not started');
    if (this.stoppedAt === undefined) {
      this.stoppedAt = epochNow();
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await Promise.all([...this.inFlight]);
    if (this.agent !== false) this.agent.destroy();
    return this.report();
  }

  /** The report so far (requests still in flight are left out), without stopping. */
  report(): ClientLoopReport {
    if (this.startedAt === undefined) throw new Error('ClientLoop: not started');
    return summarize(this.records, {
      url: this.url.href,
      ratePerSecond: this.ratePerSecond,
      startedAt: this.startedAt,
      stoppedAt: this.stoppedAt ?? epochNow(),
    });
  }

  private tick(): void {
    this.send();
    // Stay on the grid: a late timer skips the slots it missed rather than sending a burst,
    // which would hide the stall behind a flurry of quick successes.
    const t = performance.now();
    do this.nextAt += this.intervalMs;
    while (this.nextAt <= t);
    this.timer = setTimeout(() => this.tick(), this.nextAt - t);
  }

  private send(): void {
    const t0 = performance.now();
    const startedAt = performance.timeOrigin + t0;
    const custom = this.makeRequest?.(this.sent);
    this.sent++;
    const tag = custom?.tag === undefined ? {} : { tag: custom.tag };
    const done = new Promise<void>((resolve) => {
      let finished = false;
      const finish = (r: { ok: boolean; status?: number; servedBy?: string; error?: string }) => {
        if (finished) return;
        finished = true;
        clearTimeout(timeout);
        const latencyMs = performance.now() - t0;
        this.records.push({ startedAt, endedAt: startedAt + latencyMs, latencyMs, ...r, ...tag });
        resolve();
      };
      const mod = this.url.protocol === 'https:' ? https : http;
      const target = custom === undefined ? this.url : new URL(custom.path, this.url);
      const req = mod.request(target, { method: custom?.method ?? 'GET', agent: this.agent, headers: { 'user-agent': 'tandem-client-loop' } }, (res) => {
        const status = res.statusCode ?? 0;
        const raw = res.headers[this.header];
        const servedBy = Array.isArray(raw) ? raw[0] : raw;
        const ok = status >= 200 && status < 300;
        const result = ok ? { ok, status, servedBy } : { ok, status, servedBy, error: `HTTP ${status}` };
        // Read the body to its end: a response that stops halfway is a failure the user sees.
        res.resume();
        res.on('end', () => finish(result));
        res.on('close', () => finish(res.complete ? result : { ok: false, status, servedBy, error: 'response cut' }));
      });
      const timeout = setTimeout(() => {
        finish({ ok: false, error: 'timeout' });
        req.destroy();
      }, this.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ?? err.message }));
      req.end(custom?.body);
    });
    this.inFlight.add(done);
    void done.then(() => this.inFlight.delete(done));
  }
}

/**
 * The pure core of the report: from the records and the run's bounds, the gaps, the runs per
 * node and the failure window. Exported so it can be tested on made-up records.
 */
export function summarize(
  records: readonly ClientRequestRecord[],
  run: { url: string; ratePerSecond: number; startedAt: number; stoppedAt: number },
): ClientLoopReport {
  const intervalMs = 1_000 / run.ratePerSecond;
  const byStart = [...records].sort((a, b) => a.startedAt - b.startedAt);
  const successes = records.filter((r) => r.ok).sort((a, b) => a.endedAt - b.endedAt);

  const errors: Record<string, number> = {};
  for (const r of records) if (!r.ok) errors[r.error ?? 'unknown'] = (errors[r.error ?? 'unknown'] ?? 0) + 1;

  // Periods without a success: between consecutive successes, then from the last one to the
  // stop (a service that never came back). Before the first success nothing is counted: a
  // slow first answer is not an outage.
  const periods: ClientLoopGap[] = [];
  const gap = (fromMs: number, toMs: number): ClientLoopGap => ({ fromMs, toMs, durationMs: Math.max(0, toMs - fromMs) });
  for (let i = 1; i < successes.length; i++) periods.push(gap(successes[i - 1]!.endedAt, successes[i]!.endedAt));
  const last = successes.at(-1);
  if (last === undefined) periods.push(gap(run.startedAt, run.stoppedAt));
  else if (run.stoppedAt > last.endedAt) periods.push(gap(last.endedAt, run.stoppedAt));
  let longestGap: ClientLoopGap | undefined;
  for (const p of periods) if (longestGap === undefined || p.durationMs > longestGap.durationMs) longestGap = p;

  const servedBy: ServedByRun[] = [];
  for (const s of successes) {
    const node = s.servedBy ?? UNKNOWN_NODE;
    const cur = servedBy.at(-1);
    if (cur !== undefined && cur.node === node) {
      cur.to = s.endedAt;
      cur.count++;
    } else servedBy.push({ node, from: s.endedAt, to: s.endedAt, count: 1 });
  }

  const firstFailure = byStart.find((r) => !r.ok);
  let lastFailureIdx = -1;
  byStart.forEach((r, i) => {
    if (!r.ok) lastFailureIdx = i;
  });
  const recovery = lastFailureIdx >= 0 ? byStart.slice(lastFailureIdx + 1).find((r) => r.ok) : undefined;

  const report: ClientLoopReport = {
    url: run.url,
    ratePerSecond: run.ratePerSecond,
    startedAt: run.startedAt,
    stoppedAt: run.stoppedAt,
    requests: records.length,
    ok: successes.length,
    failed: records.length - successes.length,
    longestGapMs: longestGap?.durationMs ?? 0,
    gaps: periods.filter((p) => p.durationMs > 2 * intervalMs),
    servedBy,
    errors,
    records: byStart,
  };
  if (longestGap !== undefined) report.longestGap = longestGap;
  if (firstFailure !== undefined) report.firstFailureAt = firstFailure.startedAt;
  if (recovery !== undefined) report.recoveredAt = recovery.endedAt;
  return report;
}

function clockTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Most runs `format` names before it abbreviates a flapping service. */
const MAX_RUNS_NAMED = 6;

/** One line for test output and benchmark logs, e.g. "20 req/s for 31.2 s: 612 ok, 13 failed
 *  (ECONNREFUSED 13); longest gap 5.84 s (12:01:03.120 → 12:01:08.960); served by alpha then beta". */
export function format(report: ClientLoopReport): string {
  const seconds = ((report.stoppedAt - report.startedAt) / 1_000).toFixed(1);
  let line = `${report.ratePerSecond} req/s for ${seconds} s: ${report.ok} ok, ${report.failed} failed`;
  const causes = Object.entries(report.errors).sort((a, b) => b[1] - a[1]);
  if (causes.length > 0) line += ` (${causes.map(([cause, n]) => `${cause} ${n}`).join(', ')})`;
  if (report.ok === 0) return `${line}; no successful response`;
  const g = report.longestGap;
  if (g !== undefined) line += `; longest gap ${(g.durationMs / 1_000).toFixed(2)} s (${clockTime(g.fromMs)} → ${clockTime(g.toMs)})`;
  const nodes = report.servedBy.map((r) => r.node);
  const named = nodes.length <= MAX_RUNS_NAMED ? nodes.join(' then ') : `${nodes.slice(0, MAX_RUNS_NAMED).join(' then ')} … (${nodes.length} runs)`;
  return `${line}; served by ${named}`;
}
