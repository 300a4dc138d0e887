// Reading a node's events in tests, as the console and the CLI do (GET /v1/events): tests wait
// on an event, never on log text, and read a story as the list of its events.
import type { TandemEvent } from '../../agent/events/index.ts';

export async function readEvents(controlUrl: string, since = 0, wait?: string): Promise<{ history: string; lastSeq: number; events: TandemEvent[] }> {
  const res = await fetch(`${controlUrl}/v1/events?since=${since}${wait === undefined ? '' : `&wait=${wait}`}`, { signal: AbortSignal.timeout(wait === undefined ? 5000 : 70_000) });
  if (!res.ok) throw new Error(`GET /v1/events: HTTP ${res.status}`);
  return (await res.json()) as { history: string; lastSeq: number; events: TandemEvent[] };
}

/** Every event of the node since `since` (all pages). */
export async function allEvents(controlUrl: string, since = 0): Promise<TandemEvent[]> {
  const out: TandemEvent[] = [];
  for (;;) {
    const p = await readEvents(controlUrl, since);
    out.push(...p.events);
    since = p.events.at(-1)?.seq ?? since;
    if (since >= p.lastSeq) return out;
  }
}

/** Waits (long polls) for the first event after `since` that matches; throws with the story so far. */
export async function waitEvent(controlUrl: string, what: string, pred: (e: TandemEvent) => boolean, timeoutMs = 30_000, since = 0): Promise<TandemEvent> {
  const deadline = Date.now() + timeoutMs;
  const seen: TandemEvent[] = [];
  let cursor = since;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${seen.map(line).join(' | ')}`);
    try {
      const p = await readEvents(controlUrl, cursor, `${Math.min(left, 10_000)}ms`);
      for (const e of p.events) {
        seen.push(e);
        if (pred(e)) return e;
      }
      cursor = p.events.at(-1)?.seq ?? cursor;
    } catch {
      // The agent is restarting: ask again.
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** One event as a short line: "role passive→active [automatic]" (links and alarms name theirs). */
export function line(e: TandemEvent): string {
  const what = e.kind === 'link' ? `link:${String(e.details.link)}` : e.kind === 'alarm' ? `alarm:${String(e.details.code)}` : e.kind === 'failover' || e.kind === 'switchover' ? `${e.kind}:${String(e.details.phase)}` : e.kind;
  return `${what} ${e.from ?? ''}→${e.to ?? ''} [${e.trigger}]`;
}

/**
 * Whether `expected` occurs in `events` in this order (other events may come between): a story
 * is told in order, but heartbeats and presence may add lines of their own.
 */
export function inOrder(events: TandemEvent[], expected: string[]): { ok: boolean; missing?: string; story: string[] } {
  const story = events.map(line);
  let i = 0;
  for (const s of story) if (i < expected.length && s === expected[i]) i++;
  return i === expected.length ? { ok: true, story } : { ok: false, missing: expected[i], story };
}
