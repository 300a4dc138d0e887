// The event history as the console lists it: both nodes' events merged, newest first, narrowed
// by node, kind, trigger and words. Pure.
import type { TandemEvent } from '../../agent/events/event.ts';

export interface EventFilter {
  node: string;
  kind: string;
  trigger: string;
  text: string;
}

export const ANY = '';

/** Adds `incoming` to `known` (both in time order), once each (node and seq identify an event). */
export function mergeEvents(known: readonly TandemEvent[], incoming: readonly TandemEvent[], keep = 2000): TandemEvent[] {
  const seen = new Set(known.map((e) => `${e.node}\0${e.seq}`));
  const out = [...known];
  for (const e of incoming) {
    const k = `${e.node}\0${e.seq}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(e);
  }
  out.sort((a, b) => a.time - b.time || (a.node === b.node ? a.seq - b.seq : a.node < b.node ? -1 : 1));
  return out.length > keep ? out.slice(out.length - keep) : out;
}

/** What the change was, in a few words: "passive → active", and the phase of an action. */
export function changeText(e: TandemEvent): string {
  const phase = typeof e.details.phase === 'string' ? ` (${e.details.phase})` : '';
  const link = e.kind === 'link' && typeof e.details.link === 'string' ? `${e.details.link}: ` : '';
  const alarm = e.kind === 'alarm' && typeof e.details.code === 'string' ? `${e.details.code}: ` : '';
  const arrow = e.from === null && e.to === null ? '' : `${e.from ?? '·'} → ${e.to ?? '·'}`;
  return `${link}${alarm}${arrow}${phase}`;
}

export function filterEvents(events: readonly TandemEvent[], f: EventFilter, limit = 200): TandemEvent[] {
  const words = f.text.trim().toLowerCase().split(/\s+/).filter((w) => w !== '');
  const out: TandemEvent[] = [];
  for (let i = events.length - 1; i >= 0 && out.length < limit; i--) {
    const e = events[i]!;
    if (f.node !== ANY && e.node !== f.node) continue;
    if (f.kind !== ANY && e.kind !== f.kind) continue;
    if (f.trigger !== ANY && e.trigger !== f.trigger) continue;
    if (words.length > 0) {
      const hay = `${e.node} ${e.kind} ${changeText(e)} ${e.trigger} ${e.reason}`.toLowerCase();
      if (!words.every((w) => hay.includes(w))) continue;
    }
    out.push(e);
  }
  return out;
}
