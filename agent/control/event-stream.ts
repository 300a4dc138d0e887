// GET /v1/events: the node's events after a sequence number, three ways. A plain GET answers at
// once; with wait=DURATION it answers as soon as there is at least one event after `since`, or
// empty when the wait is over (long polling: the CLI's --follow, scripts, tests); with
// Accept: text/event-stream it stays open and sends each event as it comes (a browser's
// EventSource, which resumes after a reconnect from Last-Event-ID by itself).
import type http from 'node:http';
import type { Clock } from '../../shared/clock.ts';
import { parseDuration } from '../../shared/sizes.ts';
import type { EventHistory } from '../events/index.ts';
import type { RequestGuard } from './request-guard.ts';

/** The longest long-poll a client may ask for. */
export const MAX_EVENTS_WAIT_MS = 60_000;
/** A stream with nothing to say sends a comment this often, so that proxies and clients see it alive. */
export const STREAM_KEEPALIVE_MS = 15_000;

export interface EventsQuery {
  since: number;
  waitMs: number;
  limit: number | undefined;
}

/** The query of GET /v1/events, or what is wrong with it. */
export function parseEventsQuery(url: URL, lastEventId: string | undefined): EventsQuery | string {
  const sinceText = url.searchParams.get('since') ?? lastEventId ?? '0';
  if (!/^\d{1,15}$/.test(sinceText)) return `since=${sinceText}: expected a sequence number`;
  const waitText = url.searchParams.get('wait');
  let waitMs = 0;
  if (waitText !== null) {
    const ms = parseDuration(waitText);
    if (ms === undefined) return `wait=${waitText}: expected a duration such as 30s`;
    waitMs = Math.min(ms, MAX_EVENTS_WAIT_MS);
  }
  const limitText = url.searchParams.get('limit');
  if (limitText !== null && !/^\d{1,6}$/.test(limitText)) return `limit=${limitText}: expected a number`;
  return { since: Number(sinceText), waitMs, limit: limitText === null ? undefined : Math.max(1, Number(limitText)) };
}

export function eventsAnswer(history: EventHistory, node: string, q: EventsQuery) {
  const events = history.since(q.since, q.limit);
  return {
    node,
    history: history.id,
    firstSeq: history.firstSeq,
    lastSeq: history.lastSeq,
    // Events between `since` and the oldest one kept were dropped (events.keep): the client missed them.
    truncated: q.since + 1 < history.firstSeq && history.lastSeq > q.since,
    events,
  };
}

/** Long poll: waits (bounded) for an event after `since`, then answers like a plain GET. */
export async function longPoll(history: EventHistory, q: EventsQuery, clock: Clock, closed: () => boolean): Promise<void> {
  const deadline = clock.monotonic() + q.waitMs;
  while (history.lastSeq <= q.since && !closed()) {
    const left = deadline - clock.monotonic();
    if (left <= 0) break;
    // In slices, so that a client that went away frees its waiter soon.
    await history.wait(q.since, Math.min(left, 1000));
  }
}

/** Server-sent events until the client goes away or the server closes. */
export async function streamEvents(req: http.IncomingMessage, res: http.ServerResponse, history: EventHistory, q: EventsQuery, guard: RequestGuard, clock: Clock, stopping: () => boolean): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', connection: 'keep-alive' });
  res.write(`retry: 2000\n: tandem events of history ${history.id}\n\n`);
  const release = guard.holdOpen(req);
  let cursor = q.since;
  let gone = false;
  res.once('close', () => (gone = true));
  try {
    while (!gone && !stopping()) {
      for (const e of history.since(cursor)) {
        res.write(`id: ${e.seq}\nevent: tandem\ndata: ${JSON.stringify(e)}\n\n`);
        cursor = e.seq;
      }
      if (history.lastSeq > cursor) continue; // more than one read's worth was waiting
      const quietUntil = clock.monotonic() + STREAM_KEEPALIVE_MS;
      while (!gone && !stopping() && history.lastSeq === cursor && clock.monotonic() < quietUntil) await history.wait(cursor, 1000);
      if (!gone && history.lastSeq === cursor) res.write(': keepalive\n\n');
    }
  } finally {
    release();
    if (!res.writableEnded) res.end();
  }
}
