// What `tandem check` observes on this node: versions, directories, free space, inotify limits,
// ports, the peer on the channel, the peer's clock through its signed presence answer, and the
// programs the generated scripts call. Every observation is bounded in time and size (a huge
// tree is counted only up to what the verdict needs); preflight-checks.ts judges them.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { derivePresenceKey, probePresence } from '../agent/links/index.ts';
import { decideConsistency, gatherRootFacts } from '../agent/points/index.ts';
import { systemClock } from '../shared/clock.ts';
import type { TandemConfig } from '../shared/config/index.ts';
import { describeCause, errnoOf } from '../shared/errors.ts';
import type { PreflightFacts } from './preflight-checks.ts';

export interface FactsInput {
  config: TandemConfig;
  /** The pair key, to ask the peer's agent for its (signed) clock; undefined: not measured. */
  key: Buffer | undefined;
  /** Ports held by this node's own agent are not "in use" (tandem check on an installed node). */
  agentRunning: boolean;
  /** Programs the scripts call, with the module that calls each. */
  programs: { name: string; neededBy: string }[];
  /** Where /proc/sys/fs/inotify/max_user_watches is read (tests point it elsewhere). */
  inotifyFile?: string;
  timeoutMs?: number;
}

const CONNECT_TIMEOUT_MS = 3000;

export async function gatherFacts(i: FactsInput): Promise<PreflightFacts> {
  const c = i.config;
  const timeoutMs = i.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const maxUserWatches = readNumber(i.inotifyFile ?? '/proc/sys/fs/inotify/max_user_watches');
  const cap = maxUserWatches === undefined ? 1_000_000 : maxUserWatches + 1;
  let dirs = 0;
  let capped = false;
  for (const r of c.protect) {
    const n = countDirs(r.path, cap - dirs);
    dirs += n.count;
    capped ||= n.capped;
  }
  const ports = await Promise.all(
    (
      [
        ['channel', c.self.channel],
        ['control', c.self.control],
        ['public', c.self.public],
      ] as const
    )
      .filter((e): e is readonly ['channel' | 'control' | 'public', { host: string; port: number }] => e[1] !== undefined)
      .map(async ([k, a]) => ({ key: `nodes.${c.self.name}.${k}`, host: a.host, port: a.port, ...(i.agentRunning ? { state: 'ours' as const } : await tryListen(a.host, a.port)) })),
  );
  const peer = { name: c.peer.name, host: c.peer.channel.host, port: c.peer.channel.port, ...(await tryConnect(c.peer.channel.host, c.peer.channel.port, timeoutMs)) };
  return {
    nodeVersion: process.version,
    uid: process.getuid?.() ?? -1,
    protectedDirs: c.protect.map((r) => inspectDir(r.path)),
    consistency: c.protect.map((r) => (fs.existsSync(r.path) ? decideConsistency(r.consistency ?? 'auto', gatherRootFacts(r.path)) : undefined)),
    disk: freeSpace(c.stateDir),
    inotify: { maxUserWatches, dirs, capped },
    ports,
    peer,
    presence: await measureClock(c, i.key, timeoutMs),
    programs: i.programs.map((p) => ({ ...p, found: which(p.name) })),
  };
}

function readNumber(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function inspectDir(dir: string): PreflightFacts['protectedDirs'][number] {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { path: dir, state: 'missing' };
    return { path: dir, state: 'unreadable', error: describeCause(err) };
  }
  if (!st.isDirectory()) return { path: dir, state: 'not-dir' };
  try {
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
    const d = fs.opendirSync(dir);
    let entries = 0;
    try {
      while (d.readSync() !== null && entries < 1_000_000) entries += 1;
    } finally {
      d.closeSync();
    }
    return { path: dir, state: 'ok', entries };
  } catch (err) {
    return { path: dir, state: 'unreadable', error: describeCause(err) };
  }
}

/** Directories under `root` (itself included), counted up to `cap`; symlinks are not followed. */
export function countDirs(root: string, cap: number): { count: number; capped: boolean } {
  const stack = [root];
  let count = 0;
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let d: fs.Dir;
    try {
      d = fs.opendirSync(dir);
    } catch {
      continue;
    }
    count += 1;
    if (count >= cap) {
      d.closeSync();
      return { count, capped: true };
    }
    try {
      for (let e = d.readSync(); e !== null; e = d.readSync()) if (e.isDirectory()) stack.push(path.join(dir, e.name));
    } finally {
      d.closeSync();
    }
  }
  return { count, capped: false };
}

function freeSpace(dir: string): PreflightFacts['disk'] {
  let p = dir;
  while (!fs.existsSync(p) && path.dirname(p) !== p) p = path.dirname(p);
  try {
    const s = fs.statfsSync(p);
    return { path: p, freeBytes: s.bavail * s.bsize };
  } catch (err) {
    return { path: p, error: describeCause(err) };
  }
}

function tryListen(host: string, port: number): Promise<{ state: 'free' | 'in-use' | 'not-local' | 'error'; error?: string }> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (err) => {
      const code = errnoOf(err);
      resolve(code === 'EADDRINUSE' ? { state: 'in-use' } : code === 'EADDRNOTAVAIL' ? { state: 'not-local' } : { state: 'error', error: describeCause(err) });
    });
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve({ state: 'free' })));
  });
}

function tryConnect(host: string, port: number, timeoutMs: number): Promise<{ state: 'open' | 'refused' | 'unreachable' | 'timeout' | 'error'; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (r: { state: 'open' | 'refused' | 'unreachable' | 'timeout' | 'error'; error?: string }) => {
      clearTimeout(t);
      s.destroy();
      resolve(r);
    };
    const t = setTimeout(() => done({ state: 'timeout' }), timeoutMs);
    s.once('connect', () => done({ state: 'open' }));
    s.once('error', (err) => {
      const code = errnoOf(err);
      done(code === 'ECONNREFUSED' ? { state: 'refused' } : code === 'EHOSTUNREACH' || code === 'ENETUNREACH' ? { state: 'unreachable', error: describeCause(err) } : { state: 'error', error: describeCause(err) });
    });
  });
}

/** The peer agent's clock against ours, from one signed presence answer: skew ± half the round trip. */
async function measureClock(c: TandemConfig, key: Buffer | undefined, timeoutMs: number): Promise<PreflightFacts['presence']> {
  if (c.peer.public === undefined) return { state: 'unconfigured' };
  if (key === undefined) return { state: 'no-key' };
  const t0 = Date.now();
  const r = await probePresence(
    { host: c.peer.public.host, port: c.peer.public.port, pair: c.pair, peer: c.peer.name, self: c.self.name, presenceKey: derivePresenceKey(key, c.pair), timeoutMs, clock: systemClock },
    new AbortController().signal,
  );
  const t1 = Date.now();
  if (r.verdict !== 'alive' || r.answer === undefined) return { state: r.verdict === 'alive' ? 'error' : r.verdict, ...(r.error === undefined ? {} : { error: r.error }) };
  return { state: 'alive', skewMs: r.answer.at - (t0 + t1) / 2, rttMs: t1 - t0 };
}

/** Whether `name` is an executable on PATH (or in the sbin directories root's PATH has). */
export function which(name: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return dirs.some((d) => {
    if (d === '') return false;
    try {
      fs.accessSync(path.join(d, name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
