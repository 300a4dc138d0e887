// Part (s): a planned switchover, command to serving. One pair with the default heartbeat timing
// (ha-pair.ts); the client loop runs against the demo application; the benchmark POSTs
// /v1/switchover to the active's control API with the control token (an HMAC of the pair key,
// as `tandem switchover` sends it) and measures the command → its 200 answer, the command → the
// first answer served by the other node, and the client's longest gap and failed requests.
// Trials alternate direction: alpha → beta, beta → alpha, alpha → beta, …
import { controlToken } from '../agent/control/index.ts';
import { loadConfig } from '../shared/config/index.ts';
import { CONTROL_TOKEN_HEADER } from '../shared/constants.ts';
import { readPairKey } from '../shared/pair-key.ts';
import { ClientLoop, format, type ClientLoopReport } from '../test/helpers/client-loop.ts';
import { sleep } from './clock.ts';
import { CLIENT_RATE, CLIENT_TIMEOUT_MS } from './failover-gap.ts';
import { agentLog, closeHaPair, DEFAULTS, epochNow, median, openHaPairRetrying, peerOf, pollUntil, scriptEvents, scriptsLogLength, waitReady, type Encryption, type FailoverPair, type NodeName } from './ha-pair.ts';

const BEFORE_MS = 2000;
const AFTER_MS = 1000;
const GIVE_UP_MS = 60_000;
export const SWITCHOVER_GOAL_MS = 2000;

export interface SwitchoverTrial {
  trial: number;
  from: NodeName;
  to: NodeName;
  /** HTTP status of POST /v1/switchover and the agent's message. */
  httpStatus: number | null;
  message: string;
  /** Command sent → its answer read. */
  answerMs: number | null;
  /** Command sent → first successful answer of the application served by `to`. */
  newNodeMs: number | null;
  longestGapMs: number;
  requests: number;
  failed: number;
  errors: Record<string, number>;
  /** Milliseconds after the command, from the scripts log (null: not seen). */
  timeline: { stopBeginMs: number | null; stopOkMs: number | null; startBeginMs: number | null; startOkMs: number | null };
  stopScriptMs: number | null;
  startScriptMs: number | null;
  /** Warn/error lines the two agents logged from the command until the end of the trial. */
  warnings: { count: number; first: string[] };
  overlaps: string[];
  client: string;
  failure?: string;
}

export interface SwitchoverResult {
  interval: string;
  threshold: number;
  goalMs: number;
  trials: SwitchoverTrial[];
  medianNewNodeMs: number | null;
  maxNewNodeMs: number | null;
  medianAnswerMs: number | null;
  /** Pairs that could not be set up (and were replaced by a fresh one). */
  setupFailures?: string[];
  /** Why the trials stopped early, when one could not run at all. */
  error?: string;
}

async function post(url: string, token: string): Promise<{ status: number; message: string }> {
  const res = await fetch(`${url}/v1/switchover`, { method: 'POST', headers: { [CONTROL_TOKEN_HEADER]: token }, signal: AbortSignal.timeout(GIVE_UP_MS) });
  const text = await res.text();
  let message = text.trim();
  try {
    const body = JSON.parse(text) as { message?: unknown };
    if (typeof body.message === 'string') message = body.message;
  } catch {
    // not JSON: the text itself
  }
  return { status: res.status, message };
}

async function trial(n: number, fp: FailoverPair, from: NodeName): Promise<SwitchoverTrial> {
  const to = peerOf(from);
  await waitReady(fp, from);
  const fromNode = fp.pair.node(from);
  const token = controlToken(readPairKey(loadConfig(fromNode.config).keyFile));
  const loop = new ClientLoop({ url: fp.pair.info.appUrl, ratePerSecond: CLIENT_RATE, timeoutMs: CLIENT_TIMEOUT_MS });
  loop.start();
  let report: ClientLoopReport | undefined;
  try {
    await sleep(BEFORE_MS);
    const scriptsFrom = scriptsLogLength(fp);
    const t0Wall = Date.now();
    const t0 = epochNow();
    let answer: { status: number; message: string } | { error: string };
    try {
      answer = await post(fromNode.controlUrl, token);
    } catch (err) {
      answer = { error: (err as Error).message };
    }
    const answerMs = Math.round(epochNow() - t0);
    const fromNew = () => loop.report().records.find((r) => r.ok && r.servedBy === to && r.startedAt >= t0);
    // A refused or failed switchover leaves the role where it was: nothing to wait for.
    const accepted = 'status' in answer && answer.status === 200;
    const served = accepted && (await pollUntil(() => fromNew() !== undefined, GIVE_UP_MS, 20));
    await sleep(AFTER_MS);
    report = await loop.stop();
    const first = report.records.filter((r) => r.ok && r.servedBy === to && r.startedAt >= t0).sort((a, b) => a.endedAt - b.endedAt)[0];

    const after = (at: number | undefined) => (at === undefined ? null : Math.round(at - t0Wall));
    const scripts = scriptEvents(fp, scriptsFrom);
    const stopBegin = scripts.find((e) => e.node === from && e.script === 'stop' && e.event === 'begin');
    const stopOk = scripts.find((e) => e.node === from && e.script === 'stop' && e.event === 'ok');
    const startBegin = scripts.find((e) => e.node === to && e.script === 'start' && e.event === 'begin');
    const startOk = scripts.find((e) => e.node === to && e.script === 'start' && e.event === 'ok');
    const end = Date.now();
    const warn = (['alpha', 'beta'] as const).flatMap((node) =>
      agentLog(fp, node)
        .filter((l) => l.at >= t0Wall && l.at <= end && (l.level === 'warn' || l.level === 'error' || l.level === 'fatal'))
        .map((l) => ({ at: l.at, text: `${node} +${Math.round(l.at - t0Wall)} ms ${l.level}: ${l.msg}` })),
    );
    warn.sort((a, b) => a.at - b.at);
    const overlaps = fp.overlaps();
    const t: SwitchoverTrial = {
      trial: n,
      from,
      to,
      httpStatus: 'status' in answer ? answer.status : null,
      message: 'status' in answer ? answer.message : answer.error,
      answerMs: 'status' in answer ? answerMs : null,
      newNodeMs: first === undefined ? null : Math.round(first.endedAt - t0),
      longestGapMs: Math.round(report.longestGapMs),
      requests: report.requests,
      failed: report.failed,
      errors: report.errors,
      timeline: { stopBeginMs: after(stopBegin?.atMs), stopOkMs: after(stopOk?.atMs), startBeginMs: after(startBegin?.atMs), startOkMs: after(startOk?.atMs) },
      stopScriptMs: stopBegin !== undefined && stopOk !== undefined ? stopOk.atMs - stopBegin.atMs : null,
      startScriptMs: startBegin !== undefined && startOk !== undefined ? startOk.atMs - startBegin.atMs : null,
      warnings: { count: warn.length, first: warn.slice(0, 5).map((w) => w.text) },
      overlaps,
      client: format(report),
    };
    if ('error' in answer) t.failure = `POST /v1/switchover to ${from}: ${answer.error}`;
    else if (answer.status !== 200) t.failure = `POST /v1/switchover to ${from} answered HTTP ${answer.status}: ${answer.message}`;
    else if (!served) t.failure = `the application did not answer from ${to} within ${GIVE_UP_MS / 1000} s of the command`;
    else if (overlaps.length > 0) t.failure = `two nodes served at once: ${overlaps.join('; ')}`;
    return t;
  } finally {
    if (report === undefined) await loop.stop().catch(() => undefined);
  }
}

export async function measureSwitchover(opts: { trials: number; keepDirs: boolean; encryption: Encryption; baseDir: string }, progress: (l: string) => void): Promise<SwitchoverResult> {
  const out: SwitchoverResult = { interval: DEFAULTS.interval, threshold: DEFAULTS.threshold, goalMs: SWITCHOVER_GOAL_MS, trials: [], medianNewNodeMs: null, maxNewNodeMs: null, medianAnswerMs: null };
  progress(`(s) a fresh pair with the default heartbeat (${DEFAULTS.interval} × ${DEFAULTS.threshold})`);
  const { fp, setupFailures } = await openHaPairRetrying(DEFAULTS, opts.encryption, opts.baseDir, (l) => progress(`(s) ${l}`));
  if (setupFailures.length > 0) out.setupFailures = setupFailures;
  let keep = opts.keepDirs;
  try {
    let from: NodeName = 'alpha';
    for (let i = 1; i <= opts.trials; i++) {
      progress(`(s) trial ${i}/${opts.trials}: POST /v1/switchover to ${from} (${from} → ${peerOf(from)})`);
      let t: SwitchoverTrial;
      try {
        t = await trial(i, fp, from);
      } catch (err) {
        out.error = `trial ${i} (${from} → ${peerOf(from)}) could not run: ${err instanceof Error ? err.message : String(err)}`;
        progress(`(s) ${out.error}`);
        keep = true;
        break;
      }
      out.trials.push(t);
      progress(
        `(s) trial ${i}: HTTP ${t.httpStatus ?? '-'} after ${t.answerMs ?? '-'} ms, ${t.to} answered ${t.newNodeMs ?? '-'} ms after the command; longest gap ${t.longestGapMs} ms, ${t.failed} failed` +
          ` (stop ${t.stopScriptMs ?? '?'} ms, start ${t.startScriptMs ?? '?'} ms)${t.failure === undefined ? '' : `; FAILED: ${t.failure}`}`,
      );
      progress(`(s)   client: ${t.client}`);
      if (t.failure !== undefined) {
        keep = true;
        break;
      }
      from = peerOf(from);
    }
  } catch (err) {
    keep = true;
    throw err;
  } finally {
    if (keep) progress(`(s) keeping the pair's directory: ${fp.pair.dir}`);
    await closeHaPair(fp, keep);
  }
  const ok = out.trials.filter((t) => t.newNodeMs !== null);
  if (ok.length > 0) {
    out.medianNewNodeMs = median(ok.map((t) => t.newNodeMs!));
    out.maxNewNodeMs = Math.max(...ok.map((t) => t.newNodeMs!));
  }
  const answered = out.trials.filter((t) => t.answerMs !== null && t.httpStatus === 200);
  if (answered.length > 0) out.medianAnswerMs = median(answered.map((t) => t.answerMs!));
  return out;
}
