// One presence probe: open a TCP connection (bounded by the timeout), send one GET, wait for the
// answer (bounded again), and classify what happened. The two waits are timed apart on purpose:
// a connect that never completes means the host is gone or cut off, while a connection the
// kernel accepted with no answer behind it means the agent is stalled (a SIGSTOPped process's
// kernel still completes handshakes into the listen backlog). Never throws; always closes.
import crypto from 'node:crypto';
import net from 'node:net';
import type { Clock } from '../../shared/clock.ts';
import { describeCause, errnoOf } from '../../shared/errors.ts';
import { parseHttpResponse } from './http-response.ts';
import { checkPresenceBody, PRESENCE_NONCE_BYTES, PRESENCE_PATH } from './presence-proof.ts';
import type { PresenceProbeResult } from './presence-state.ts';

/** Opens the connection; injectable so tests can make a connect that never completes. */
export type PresenceConnect = (to: { host: string; port: number }) => net.Socket;

export interface PresenceProbeOptions {
  host: string;
  port: number;
  pair: string;
  /** The node expected to answer. */
  peer: string;
  /** This node, sent as `from` (the answering agent may log who asks). */
  self: string;
  /** derivePresenceKey(pair key, pair). */
  presenceKey: Buffer;
  /** Bounds the connect, then again the answer. */
  timeoutMs: number;
  clock: Clock;
  connect?: PresenceConnect;
}

/** Largest presence answer body read; a real one is about 300 bytes. */
export const PRESENCE_MAX_BODY_BYTES = 16 * 1024;

// The network itself says the host cannot be reached (or the connect timed out in the kernel).
const UNREACHABLE_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EHOSTDOWN', 'ENETDOWN']);
// After the connection opened: the peer's kernel reset it, so no process holds it any more.
const GONE_AFTER_CONNECT_CODES = new Set(['ECONNRESET', 'EPIPE']);

const defaultConnect: PresenceConnect = (to) => net.connect({ host: to.host, port: to.port });

/** Resolves with the verdict of one probe; `signal` (stop) ends it early with verdict 'error'. */
export function probePresence(o: PresenceProbeOptions, signal: AbortSignal): Promise<PresenceProbeResult> {
  const nonce = crypto.randomBytes(PRESENCE_NONCE_BYTES).toString('hex');
  const { clock } = o;
  return new Promise((resolve) => {
    const t0 = clock.monotonic();
    let phase: 'connecting' | 'waiting' = 'connecting';
    let received = Buffer.alloc(0);
    let socket: net.Socket | undefined;
    // A timer that fires late (this process was busy or starved of CPU) runs before the I/O
    // that became ready meanwhile: the connect may have completed, the answer may be waiting.
    // The verdict is taken after the loop has polled once more (setImmediate runs after the
    // poll phase), so a busy prober never calls a stalled peer unreachable (which counts as
    // gone) nor an answering one stalled.
    const afterPendingIo = (verdict: () => void) => () => setImmediate(verdict);
    const noAnswer = afterPendingIo(() => finish({ verdict: 'stalled', error: `connected, but no answer within ${o.timeoutMs} ms: the agent is stalled` }));
    let timer = clock.setTimeout(
      afterPendingIo(() => {
        if (phase === 'connecting') finish({ verdict: 'unreachable', error: `no connection within ${o.timeoutMs} ms: the host is down or cut off` });
      }),
      o.timeoutMs,
    );
    let done = false;
    const finish = (r: Omit<PresenceProbeResult, 'latencyMs'>): void => {
      if (done) return;
      done = true;
      timer.cancel();
      signal.removeEventListener('abort', onAbort);
      // destroy() on every path: a stalled peer must not keep our half of the connection open.
      socket?.destroy();
      resolve({ ...r, latencyMs: Math.round((clock.monotonic() - t0) * 10) / 10 });
    };
    const onAbort = (): void => finish({ verdict: 'error', error: 'the probe was stopped' });
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });

    const onBytes = (ended: boolean): void => {
      if (done) return;
      const parsed = parseHttpResponse(received, ended, PRESENCE_MAX_BODY_BYTES);
      if (parsed.kind === 'incomplete') return;
      if (parsed.kind === 'error') {
        // Connected, then closed before a single byte: the agent's process exited under us.
        if (received.length === 0) return finish({ verdict: 'dead', error: 'the connection closed without an answer: the agent has exited' });
        return finish({ verdict: 'invalid', code: 'TANDEM_ERR_PROTOCOL', error: `not a presence answer: ${parsed.reason}` });
      }
      if (parsed.status !== 200) return finish({ verdict: 'invalid', code: 'TANDEM_ERR_PROTOCOL', error: `not a presence answer: HTTP ${parsed.status}` });
      const check = checkPresenceBody(parsed.body, { presenceKey: o.presenceKey, pair: o.pair, peer: o.peer, nonce });
      if (check.ok) return finish({ verdict: 'alive', answer: check.answer });
      finish({ verdict: 'invalid', code: check.code, error: check.reason });
    };

    try {
      socket = (o.connect ?? defaultConnect)({ host: o.host, port: o.port });
    } catch (err) {
      return finish({ verdict: 'error', error: `cannot open a connection: ${describeCause(err)}` });
    }
    socket.once('connect', () => {
      phase = 'waiting';
      timer.cancel();
      timer = clock.setTimeout(noAnswer, o.timeoutMs);
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      const query = new URLSearchParams({ nonce, from: o.self }).toString();
      socket?.write(`GET ${PRESENCE_PATH}?${query} HTTP/1.1\r\nHost: ${host}:${o.port}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      onBytes(false);
    });
    socket.on('end', () => onBytes(true));
    socket.on('error', (err) => {
      const code = errnoOf(err) ?? '';
      const cause = describeCause(err);
      if (phase === 'connecting') {
        if (code === 'ECONNREFUSED') return finish({ verdict: 'dead', error: `connection refused: the host is up but no agent listens (${cause})` });
        // A reset in answer to the connect: something on the way (the host, a relay in front of
        // it) turned the connection down, just as a refusal would.
        if (code === 'ECONNRESET') return finish({ verdict: 'dead', error: `connection reset while connecting: no agent takes it (${cause})` });
        if (UNREACHABLE_CODES.has(code)) return finish({ verdict: 'unreachable', error: `the host cannot be reached: ${cause}` });
        // A local failure (no file descriptors, no name resolution) says nothing about the peer.
        return finish({ verdict: 'error', error: `the probe could not be made: ${cause}` });
      }
      if (GONE_AFTER_CONNECT_CODES.has(code)) return finish({ verdict: 'dead', error: `the connection was reset: the agent has exited (${cause})` });
      if (UNREACHABLE_CODES.has(code)) return finish({ verdict: 'unreachable', error: `the host cannot be reached: ${cause}` });
      finish({ verdict: 'error', error: `the probe failed: ${cause}` });
    });
    socket.on('close', () => {
      if (phase === 'connecting') finish({ verdict: 'error', error: 'the connection closed before it opened' });
      else onBytes(true);
    });
  });
}
