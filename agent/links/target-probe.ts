// One check of one public target, with its own deadline: a TCP connect, an HTTP GET or one ICMP
// echo through the system's `ping`. Each probe settles by itself (success, failure, timeout or
// stop) and leaves no socket or child process behind; it never throws.
import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { systemClock, type Clock } from '../../shared/clock.ts';
import type { PublicTarget } from '../../shared/config/load.ts';
import { describeCause, errnoOf } from '../../shared/errors.ts';

export type TargetOutcome =
  | { result: 'ok'; latencyMs: number }
  | { result: 'failed'; latencyMs: number; error: string }
  /** This node cannot run this kind of check at all (no `ping` binary, no permission). */
  | { result: 'unavailable'; error: string };

/** Checks one target; `signal` aborts it (the checker stopped). Injectable for tests. */
export type TargetProbe = (target: PublicTarget, signal: AbortSignal) => Promise<TargetOutcome>;

export interface ProbeTargetOptions {
  clock?: Clock;
  /** The ping program; tests point it at a missing one. */
  pingCommand?: string;
}

/** Bytes of an HTTP body read (and thrown away) before the connection is dropped. */
export const HTTP_CHECK_MAX_BODY_BYTES = 64 * 1024;

const STDERR_KEEP_CHARS = 500;

// Where ping exists but may not open its socket: iputils ("socket: Operation not permitted"),
// busybox ("permission denied (are you root?)"), setuid bit lost ("must be root").
const PING_NOT_PERMITTED = /operation not permitted|permission denied|must be root|are you root/i;

export function probeTarget(target: PublicTarget, signal: AbortSignal, opts: ProbeTargetOptions = {}): Promise<TargetOutcome> {
  const clock = opts.clock ?? systemClock;
  return withDeadline(clock, target.timeoutMs, signal, (deadline) => {
    switch (target.kind) {
      case 'tcp':
        return probeTcp(target.url, deadline, clock);
      case 'http':
        return probeHttp(target.url, deadline, clock);
      case 'ping':
        return probePing(target.url, target.timeoutMs, deadline, clock, opts.pingCommand ?? 'ping');
    }
  });
}

/**
 * Runs `run` with a signal that aborts at the deadline or when `outer` aborts, whichever is
 * first; the abort reason is the failure text ("timed out after 1000 ms" or "stopped").
 */
async function withDeadline(clock: Clock, timeoutMs: number, outer: AbortSignal, run: (signal: AbortSignal) => Promise<TargetOutcome>): Promise<TargetOutcome> {
  const ac = new AbortController();
  const onOuterAbort = (): void => ac.abort('stopped');
  if (outer.aborted) onOuterAbort();
  else outer.addEventListener('abort', onOuterAbort, { once: true });
  // After one more poll of the loop (see presence-probe.ts): a timer that fires late, in a busy
  // process, must not fail a connect that completed meanwhile and only waits to be read.
  let over = false;
  const timer = clock.setTimeout(
    () =>
      setImmediate(() => {
        if (!over) ac.abort(`timed out after ${timeoutMs} ms`);
      }),
    timeoutMs,
  );
  try {
    return await run(ac.signal);
  } catch (err) {
    // The probes resolve on every path; this only catches a bug (an unparsable URL slipped in).
    return { result: 'failed', latencyMs: 0, error: describeCause(err) };
  } finally {
    over = true;
    timer.cancel();
    outer.removeEventListener('abort', onOuterAbort);
  }
}

const abortText = (signal: AbortSignal): string => (typeof signal.reason === 'string' ? signal.reason : 'stopped');

/** Settles once; runs `cleanup` then resolves, whatever path got there first. */
function settleOnce(resolve: (o: TargetOutcome) => void, signal: AbortSignal, cleanup: () => void): (o: TargetOutcome) => void {
  let settled = false;
  const settle = (o: TargetOutcome): void => {
    if (settled) return;
    settled = true;
    signal.removeEventListener('abort', onAbort);
    cleanup();
    resolve(o);
  };
  const onAbort = (): void => settle({ result: 'failed', latencyMs: 0, error: abortText(signal) });
  signal.addEventListener('abort', onAbort, { once: true });
  return settle;
}

function stripBrackets(host: string): string {
  return host.replace(/^\[|\]$/g, '');
}

function probeTcp(url: string, signal: AbortSignal, clock: Clock): Promise<TargetOutcome> {
  const u = new URL(url);
  const host = stripBrackets(u.hostname);
  const port = Number(u.port);
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    return Promise.resolve({ result: 'failed', latencyMs: 0, error: `not a tcp://host:port target: ${url}` });
  }
  return new Promise((resolve) => {
    const t0 = clock.monotonic();
    const socket = net.connect({ host, port });
    const settle = settleOnce(resolve, signal, () => socket.destroy());
    if (signal.aborted) return settle({ result: 'failed', latencyMs: 0, error: abortText(signal) });
    // Connected is the whole check: close at once, send nothing.
    socket.once('connect', () => settle({ result: 'ok', latencyMs: clock.monotonic() - t0 }));
    socket.on('error', (err) => settle({ result: 'failed', latencyMs: clock.monotonic() - t0, error: describeCause(err) }));
  });
}

function probeHttp(url: string, signal: AbortSignal, clock: Clock): Promise<TargetOutcome> {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve) => {
    const t0 = clock.monotonic();
    // A fresh connection per check (agent: false): a pooled keep-alive socket would prove only
    // that the path worked when it was opened.
    const req = client.request(url, { method: 'GET', agent: false, headers: { 'user-agent': 'tandem-public-check', connection: 'close' } });
    const settle = settleOnce(resolve, signal, () => req.destroy());
    if (signal.aborted) return settle({ result: 'failed', latencyMs: 0, error: abortText(signal) });
    req.on('error', (err) => settle({ result: 'failed', latencyMs: clock.monotonic() - t0, error: describeCause(err) }));
    req.on('response', (res) => {
      const latencyMs = clock.monotonic() - t0;
      const status = res.statusCode ?? 0;
      const outcome: TargetOutcome = status < 400 ? { result: 'ok', latencyMs } : { result: 'failed', latencyMs, error: `HTTP ${status}` };
      // The status decides; the body is read and thrown away so the server is not left with a
      // half-sent answer, up to a bound, so a huge or endless body cannot hold the check open.
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > HTTP_CHECK_MAX_BODY_BYTES) settle(outcome);
      });
      res.on('end', () => settle(outcome));
      res.on('error', () => settle(outcome));
    });
    req.end();
  });
}

function probePing(url: string, timeoutMs: number, signal: AbortSignal, clock: Clock, command: string): Promise<TargetOutcome> {
  const host = stripBrackets(new URL(url).hostname);
  // spawn uses no shell, but a host that starts with '-' would still be read as an option.
  if (host === '' || host.startsWith('-')) return Promise.resolve({ result: 'failed', latencyMs: 0, error: `not a ping://host target: ${url}` });
  const waitS = Math.max(1, Math.ceil(timeoutMs / 1000));
  return new Promise((resolve) => {
    const t0 = clock.monotonic();
    const child = spawn(command, ['-n', '-c', '1', '-W', String(waitS), host], { stdio: ['ignore', 'ignore', 'pipe'] });
    const settle = settleOnce(resolve, signal, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    if (signal.aborted) return settle({ result: 'failed', latencyMs: 0, error: abortText(signal) });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      if (stderr.length < STDERR_KEEP_CHARS) stderr += d;
    });
    child.on('error', (err) => {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM') {
        settle({ result: 'unavailable', error: `cannot run ${command}: ${describeCause(err)}` });
      } else {
        settle({ result: 'failed', latencyMs: clock.monotonic() - t0, error: describeCause(err) });
      }
    });
    child.on('close', (code) => {
      const latencyMs = clock.monotonic() - t0;
      const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
      const denied = lines.find((l) => PING_NOT_PERMITTED.test(l));
      if (code === 0) settle({ result: 'ok', latencyMs });
      else if (denied !== undefined) settle({ result: 'unavailable', error: `${command} is not permitted here: ${denied}` });
      else settle({ result: 'failed', latencyMs, error: lines.at(-1) ?? `no reply (${command} exited with ${String(code)})` });
    });
  });
}
