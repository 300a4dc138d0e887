// The pair that parts (f) failover and (s) switchover measure: the fault tests' FailoverPair
// (test/helpers/failover-pair.ts: the demo pair, its heartbeat timing as given, TCP proxies on the
// channel, presence and public links, a gateway as the public check target), with the settings
// the test helpers shorten for speed (capture, reconnect, apply retry) put back to the product's
// defaults. Every pair opened here is closed by closeAllHaPairs (run.ts's cleanup and SIGINT) and,
// as a last resort on process exit, by killAllHaPairsNow: agents and demo applications end by pid.
import fs from 'node:fs';
import type { AgentStatus } from '../agent/control/index.ts';
import { readScriptsLog, type ScriptsLogEntry } from '../agent/scripts/index.ts';
import { DEFAULTS, FailoverPair, TUNED, type FailoverTiming } from '../test/helpers/failover-pair.ts';
import type { NodeName } from '../test/helpers/pair.ts';
import { killDemoApps } from './children.ts';
import { sleep } from './clock.ts';

export { DEFAULTS, TUNED, FailoverPair, type FailoverTiming, type NodeName };

/** Wall-clock milliseconds on the ClientLoop's time base (performance.timeOrigin + now). */
export const epochNow = (): number => performance.timeOrigin + performance.now();

const open = new Set<FailoverPair>();
const creating = new Set<Promise<FailoverPair>>();

export type Encryption = 'tls-psk' | 'none';

/** TestPair's testDefaults() shortens these for quick tests; the benchmark measures the product. */
function productDefaults(doc: Record<string, any>, encryption: Encryption): void {
  const drop = (section: string, keys: string[]) => {
    const o = doc[section] as Record<string, unknown> | undefined;
    if (o === undefined) return;
    for (const k of keys) delete o[k];
    if (Object.keys(o).length === 0) delete doc[section];
  };
  drop('capture', ['settle', 'renameWindow', 'scanInterval']);
  drop('channel', ['reconnectMin', 'reconnectMax']);
  drop('apply', ['retryMin', 'retryMax']);
  if (encryption !== 'tls-psk') doc.channel = { ...(doc.channel ?? {}), encryption };
}

export const peerOf = (n: NodeName): NodeName => (n === 'alpha' ? 'beta' : 'alpha');

/** Setting up a pair can fail for reasons that are not what is measured (a port found free and
 *  taken again before the agent listened): try again with a fresh pair, and say so. */
export async function openHaPairRetrying(timing: FailoverTiming, encryption: Encryption, baseDir: string, progress: (l: string) => void, attempts = 3): Promise<{ fp: FailoverPair; setupFailures: string[] }> {
  const setupFailures: string[] = [];
  for (;;) {
    try {
      return { fp: await openHaPair(timing, encryption, baseDir), setupFailures };
    } catch (err) {
      const first = ((err as Error).message ?? String(err)).split('\n').find((l) => /error|fatal|EADDRINUSE|timed out/i.test(l)) ?? (err as Error).message;
      setupFailures.push(first.slice(0, 300));
      if (setupFailures.length >= attempts) throw err;
      progress(`setting up a pair failed (${first.slice(0, 200)}); trying again with a fresh one`);
    }
  }
}

/**
 * A fresh pair with `timing`, both agents started, alpha active and serving the demo
 * application, beta passive, connected, in sync, its presence probe seeing alpha alive and its
 * own public checks up: a pair ready to fail over.
 */
/** `prepare` runs once the pair is written and before its agents start (e.g. to fill the trees). */
/** `cpuProfileDir`: the agents run under node --cpu-prof and write there when they stop (see stopProfiled). */
/** `directChannel`: no proxy on the channel (only inside a private network namespace: test/helpers/direct-channel.ts). */
export async function openHaPair(timing: FailoverTiming, encryption: Encryption, baseDir: string, prepare?: (fp: FailoverPair) => void, cpuProfileDir?: string, directChannel = false): Promise<FailoverPair> {
  // TestPair writes the pair into os.tmpdir(), which follows TMPDIR: put it in the benchmark's
  // own temp dir, where nothing else cleans up and --keep keeps it.
  const before = process.env.TMPDIR;
  process.env.TMPDIR = baseDir;
  const pending = FailoverPair.create(timing, (doc) => productDefaults(doc, encryption), { directChannel });
  creating.add(pending);
  let fp: FailoverPair;
  try {
    fp = await pending;
  } finally {
    creating.delete(pending);
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
  open.add(fp);
  try {
    prepare?.(fp);
    if (cpuProfileDir === undefined) await fp.pair.startBoth();
    else {
      // NODE_OPTIONS cannot carry --cpu-prof: a shell execs node with it in place (same pid).
      fs.mkdirSync(cpuProfileDir, { recursive: true });
      const wrap = (name: string) => ['sh', '-c', `exec "$0" --cpu-prof --cpu-prof-dir="$PROF_DIR" --cpu-prof-name=${name}.cpuprofile "$@"`];
      await Promise.all((['alpha', 'beta'] as const).map((n) => fp.pair.start(n, { wrap: wrap(n), env: { PROF_DIR: cpuProfileDir } })));
    }
    await fp.waitServedBy('alpha', 60_000);
    await waitReady(fp, 'alpha');
    return fp;
  } catch (err) {
    await closeHaPair(fp, false);
    throw err;
  }
}

/** `active` serves and the application answers from it; its peer is passive, connected, in
 *  sync, sees the active alive through presence, and its own public checks are up. */
export async function waitReady(fp: FailoverPair, active: NodeName, timeoutMs = 60_000): Promise<{ active: AgentStatus; passive: AgentStatus }> {
  const passive = peerOf(active);
  const a = await fp.pair.waitFor(active, 'active and serving, peer connected', (s) => s.role === 'active' && s.failover.serving && s.failover.phase === 'steady' && s.peer.connected, timeoutMs);
  const p = await fp.pair.waitFor(
    passive,
    'passive, connected, in sync, presence alive, public up',
    (s) => s.role === 'passive' && s.failover.phase === 'steady' && s.peer.connected && s.replication.inSync && s.failover.presence === 'alive' && s.links.public === 'up',
    timeoutMs,
  );
  await fp.waitServedBy(active, timeoutMs);
  return { active: a, passive: p };
}

/** How long closing a pair may take: its agents, applications, proxies and gateway. */
const CLOSE_TIMEOUT_MS = 30_000;

/** Said when closing a pair took too long (the run carries on; run.ts exits explicitly). */
export const closeProblems: string[] = [];

/** Stops a pair's agents and demo applications and removes its directory (kept when `keep`). */
export async function closeHaPair(fp: FailoverPair, keep: boolean): Promise<void> {
  if (!open.delete(fp)) return;
  const before = process.env.TANDEM_KEEP_TEST_DIRS;
  if (keep) process.env.TANDEM_KEEP_TEST_DIRS = '1';
  let timer: NodeJS.Timeout | undefined;
  try {
    // A proxy whose connection never reports closed must not hold the whole run.
    const late = await Promise.race([
      fp.cleanup().then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), CLOSE_TIMEOUT_MS);
      }),
    ]);
    if (late) closeProblems.push(`closing the pair in ${fp.pair.dir} did not finish within ${CLOSE_TIMEOUT_MS / 1000} s (its agents and applications were killed; a TCP proxy or the gateway of test/helpers/failover-pair.ts was still closing)`);
  } finally {
    clearTimeout(timer);
    if (before === undefined) delete process.env.TANDEM_KEEP_TEST_DIRS;
    else process.env.TANDEM_KEEP_TEST_DIRS = before;
    // cleanup() kills the agents and stops the applications with the pair's stop scripts; make
    // sure of both: an application they missed (its scripts gone, a pid file lost) still names
    // the pair's data dir in its command line.
    for (const child of fp.pair.procs.values()) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    killDemoApps(fp.pair.dir);
  }
}

/** Stops both agents with SIGTERM so that node writes their CPU profiles (a SIGKILL would not). */
export async function stopProfiled(fp: FailoverPair): Promise<void> {
  await Promise.all((['alpha', 'beta'] as const).map((n) => fp.pair.kill(n, 'SIGTERM')));
}

/** Closes every pair still open, including one whose creation is under way. */
export async function closeAllHaPairs(keep = false): Promise<void> {
  const late = await Promise.allSettled([...creating]);
  for (const r of late) if (r.status === 'fulfilled') open.add(r.value);
  for (const fp of [...open]) await closeHaPair(fp, keep).catch(() => {});
}

/** The pid in a node's run/app.pid, if that process is the demo application and alive. */
export function appPid(fp: FailoverPair, node: NodeName): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(fp.pair.node(node).pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmd.includes('demo-app.mjs')) return undefined;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/** Synchronous last resort (process 'exit'): SIGKILL every agent and demo application of the
 *  pairs still open. */
export function killAllHaPairsNow(): void {
  for (const fp of open) {
    for (const child of fp.pair.procs.values()) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    killDemoApps(fp.pair.dir);
  }
}

export interface LogLine {
  at: number;
  level: string;
  msg: string;
  fields: Record<string, any>;
}

/** A node's agent log (NDJSON) as lines with epoch-millisecond times. */
export function agentLog(fp: FailoverPair, node: NodeName): LogLine[] {
  return fp.pair.logLines(node).flatMap((l) => {
    const at = typeof l.time === 'number' ? l.time : Date.parse(String(l.time));
    if (!Number.isFinite(at)) return [];
    return [{ at, level: String(l.level ?? ''), msg: String(l.msg ?? ''), fields: l }];
  });
}

export interface ScriptEvent extends ScriptsLogEntry {
  atMs: number;
}

/** The pair's scripts log (lines "<iso> <node> start|stop begin|ok <reason>") from entry `from`. */
export function scriptEvents(fp: FailoverPair, from = 0): ScriptEvent[] {
  return readScriptsLog(fp.pair.info.scriptsLog)
    .slice(from)
    .map((e) => ({ ...e, atMs: Date.parse(e.at) }));
}

export function scriptsLogLength(fp: FailoverPair): number {
  return readScriptsLog(fp.pair.info.scriptsLog).length;
}

/** Polls until `pred` holds, every `everyMs`; false after `timeoutMs`. */
export async function pollUntil(pred: () => boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (pred()) return true;
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
