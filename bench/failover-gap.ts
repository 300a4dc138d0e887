// Part (f): the longest gap a client sees when the active server dies. A fresh pair per trial
// (ha-pair.ts); a client loop (test/helpers/client-loop.ts: 20 GET/s, a new connection each, 500 ms
// timeout) measures the demo application from outside; then the active *server* dies: its agent
// and its demo application get SIGKILL at the same moment (the application's pid from the node's
// run/app.pid), so nothing stops cleanly and nothing is handed over. Measured until the
// application answers from the other node, and one second beyond.
//
// What the gap is made of comes from the pair's own records: the new active's agent log (when
// it lost the channel, when its presence probe said the old active was gone, when it decided to
// promote) and the scripts log (its start script's begin and ok).
import { overlappingStarts } from '../agent/scripts/index.ts';
import { ClientLoop, format, type ClientLoopReport } from '../test/helpers/client-loop.ts';
import { parseDuration } from '../shared/sizes.ts';
import { sleep } from './clock.ts';
import { agentLog, appPid, closeHaPair, DEFAULTS, epochNow, median, openHaPairRetrying, pollUntil, scriptEvents, scriptsLogLength, TUNED, type Encryption, type FailoverPair, type FailoverTiming } from './ha-pair.ts';

export const CLIENT_RATE = 20;
export const CLIENT_TIMEOUT_MS = 500;
/** The client loop runs this long before the kill, and this long after the first answer of the new node. */
const BEFORE_MS = 2000;
const AFTER_MS = 1000;
/** A trial that has no answer from the new node by then failed. */
const GIVE_UP_MS = 60_000;

/** Presence states that let a passive take over (agent/failover/decision.ts). */
const GONE = new Set(['dead', 'unreachable']);

export interface FailoverTrial {
  trial: number;
  /** Longest time between two successful answers (ClientLoop.longestGapMs). */
  longestGapMs: number;
  requests: number;
  failed: number;
  errors: Record<string, number>;
  /** Kill → first successful answer served by the new node; null when none came. */
  killToNewMs: number | null;
  /** Milliseconds after the kill, from the new active's agent log and the scripts log (null: not seen). */
  timeline: {
    channelLostMs: number | null;
    presenceGoneMs: number | null;
    promoteMs: number | null;
    startBeginMs: number | null;
    startOkMs: number | null;
  };
  /** Start script begin → ok (scripts log). */
  startScriptMs: number | null;
  /** Times the presence probe left "gone" (dead/unreachable) between the first "gone" after the
   *  kill and the promotion: each restarts the failover threshold. With the verdicts, in order. */
  presenceRestarts: number;
  presenceFlaps: string[];
  /** Entries where both nodes served at once (scripts log); must be empty. */
  overlaps: string[];
  client: string;
  failure?: string;
  /** Pairs that could not be set up for this trial (and were replaced by a fresh one). */
  setupFailures?: string[];
}

export interface FailoverSeries {
  name: 'defaults' | 'tuned';
  interval: string;
  threshold: number;
  /** interval × threshold: how long the channel and presence must say "gone" before a promotion. */
  thresholdMs: number;
  goalMs: number;
  trials: FailoverTrial[];
  /** Trials that could not run at all (no numbers), with why. */
  errors: string[];
  /** Over the trials that produced a gap. */
  medianGapMs: number | null;
  maxGapMs: number | null;
}

export interface FailoverResult {
  clientRate: number;
  clientTimeoutMs: number;
  series: FailoverSeries[];
}

export const FAILOVER_GOALS = { defaults: 7000, tuned: 2000 } as const;

async function trial(n: number, timing: FailoverTiming, opts: FailoverOptions, progress: (l: string) => void): Promise<FailoverTrial> {
  const { fp, setupFailures } = await openHaPairRetrying(timing, opts.encryption, opts.baseDir, (l) => progress(`(f) ${l}`));
  let keep = opts.keepDirs;
  try {
    const t = await killActive(n, fp);
    if (setupFailures.length > 0) t.setupFailures = setupFailures;
    if (t.failure !== undefined) keep = true;
    return t;
  } catch (err) {
    keep = true;
    throw err;
  } finally {
    if (keep) progress(`(f) keeping the pair's directory: ${fp.pair.dir}`);
    await closeHaPair(fp, keep);
  }
}

async function killActive(n: number, fp: FailoverPair): Promise<FailoverTrial> {
  const loop = new ClientLoop({ url: fp.pair.info.appUrl, ratePerSecond: CLIENT_RATE, timeoutMs: CLIENT_TIMEOUT_MS });
  loop.start();
  let report: ClientLoopReport | undefined;
  try {
    await sleep(BEFORE_MS);
    const app = appPid(fp, 'alpha');
    const agent = fp.pair.procs.get('alpha');
    if (app === undefined || agent === undefined) throw new Error(`alpha is not serving: application pid ${app ?? 'none'}, agent ${agent?.pid ?? 'none'}`);
    const scriptsFrom = scriptsLogLength(fp);
    // The server dies: agent and application at the same moment, nothing stops cleanly.
    const killWall = Date.now();
    const killEpoch = epochNow();
    process.kill(app, 'SIGKILL');
    agent.kill('SIGKILL');
    await fp.pair.kill('alpha', 'SIGKILL');
    const fromBeta = () => loop.report().records.find((r) => r.ok && r.servedBy === 'beta' && r.startedAt >= killEpoch);
    const served = await pollUntil(() => fromBeta() !== undefined, GIVE_UP_MS, 20);
    if (served) await sleep(AFTER_MS);
    report = await loop.stop();
    const first = report.records.filter((r) => r.ok && r.servedBy === 'beta' && r.startedAt >= killEpoch).sort((a, b) => a.endedAt - b.endedAt)[0];

    const after = (at: number | undefined) => (at === undefined ? null : Math.round(at - killWall));
    const log = agentLog(fp, 'beta').filter((l) => l.at >= killWall - 5);
    const channelLost = log.find((l) => l.fields.component === 'channel' && /connection lost|channel: down|heartbeats? (missed|lost)/i.test(l.msg));
    const promote = log.find((l) => l.fields.component === 'failover' && l.fields.effect === 'promote');
    const presence = log.filter((l) => l.fields.component === 'links' && l.msg.startsWith('presence') && typeof l.fields.to === 'string' && (promote === undefined || l.at <= promote.at));
    const firstGone = presence.find((l) => GONE.has(String(l.fields.to)));
    const flaps = firstGone === undefined ? [] : presence.filter((l) => l.at >= firstGone.at && !GONE.has(String(l.fields.to)));
    const scripts = scriptEvents(fp, scriptsFrom).filter((e) => e.node === 'beta' && e.script === 'start');
    const begin = scripts.find((e) => e.event === 'begin');
    const ok = scripts.find((e) => e.event === 'ok' && (begin === undefined || e.atMs >= begin.atMs));
    // Alpha's application died by SIGKILL, which no stop script logs: end its serving at the
    // kill, or every failover would read as two nodes serving at once.
    const all = scriptEvents(fp);
    const killed = { at: new Date(killWall).toISOString(), atMs: killWall, node: 'alpha', script: 'stop', event: 'ok', reason: 'SIGKILL of the server by the benchmark' };
    const cut = all.findIndex((e, i) => i >= scriptsFrom && e.atMs > killWall);
    const overlaps = overlappingStarts(cut < 0 ? [...all, killed] : [...all.slice(0, cut), killed, ...all.slice(cut)]);

    const t: FailoverTrial = {
      trial: n,
      longestGapMs: Math.round(report.longestGapMs),
      requests: report.requests,
      failed: report.failed,
      errors: report.errors,
      killToNewMs: first === undefined ? null : Math.round(first.endedAt - killEpoch),
      timeline: {
        channelLostMs: after(channelLost?.at),
        presenceGoneMs: after(firstGone?.at),
        promoteMs: after(promote?.at),
        startBeginMs: after(begin?.atMs),
        startOkMs: after(ok?.atMs),
      },
      startScriptMs: begin !== undefined && ok !== undefined ? ok.atMs - begin.atMs : null,
      presenceRestarts: flaps.length,
      presenceFlaps: flaps.map((l) => `${Math.round(l.at - killWall)} ms: ${String(l.fields.to)} (${String(l.fields.reason ?? '')})`),
      overlaps,
      client: format(report),
    };
    if (!served) t.failure = `the application did not answer from beta within ${GIVE_UP_MS / 1000} s of the kill`;
    else if (overlaps.length > 0) t.failure = `two nodes served at once: ${overlaps.join('; ')}`;
    return t;
  } finally {
    if (report === undefined) await loop.stop().catch(() => undefined);
  }
}

export interface FailoverOptions {
  trials: number;
  keepDirs: boolean;
  encryption: Encryption;
  /** Where the pairs are written (the benchmark's temp dir). */
  baseDir: string;
  series?: Array<'defaults' | 'tuned'>;
}

export async function measureFailover(opts: FailoverOptions, progress: (l: string) => void): Promise<FailoverResult> {
  const out: FailoverResult = { clientRate: CLIENT_RATE, clientTimeoutMs: CLIENT_TIMEOUT_MS, series: [] };
  for (const name of opts.series ?? (['defaults', 'tuned'] as const)) {
    const timing = name === 'defaults' ? DEFAULTS : TUNED;
    const s: FailoverSeries = {
      name,
      interval: timing.interval,
      threshold: timing.threshold,
      thresholdMs: (parseDuration(timing.interval) ?? 0) * timing.threshold,
      goalMs: FAILOVER_GOALS[name],
      trials: [],
      errors: [],
      medianGapMs: null,
      maxGapMs: null,
    };
    out.series.push(s);
    for (let i = 1; i <= opts.trials; i++) {
      progress(`(f) ${name} (${timing.interval} × ${timing.threshold}), trial ${i}/${opts.trials}: fresh pair, then SIGKILL of alpha's agent and application`);
      let t: FailoverTrial;
      try {
        t = await trial(i, timing, opts, progress);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        s.errors.push(`trial ${i}: ${message}`);
        progress(`(f) ${name} trial ${i} could not run: ${message}`);
        continue;
      }
      s.trials.push(t);
      const tl = t.timeline;
      progress(
        `(f) ${name} trial ${i}: longest gap ${t.longestGapMs} ms, ${t.failed} failed, beta answered ${t.killToNewMs ?? '-'} ms after the kill ` +
          `(promote at ${tl.promoteMs ?? '?'} ms, presence restarts ${t.presenceRestarts}, start script ${t.startScriptMs ?? '?'} ms)${t.failure === undefined ? '' : `; FAILED: ${t.failure}`}`,
      );
      progress(`(f)   client: ${t.client}`);
    }
    const gaps = s.trials.filter((t) => t.killToNewMs !== null).map((t) => t.longestGapMs);
    if (gaps.length > 0) {
      s.medianGapMs = median(gaps);
      s.maxGapMs = Math.max(...gaps);
    }
  }
  return out;
}
