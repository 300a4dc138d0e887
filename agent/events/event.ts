// The shape of one event: a change of something the operator must know, stamped once by the
// state tracker. The same record is logged, counted, kept on disk, streamed on /v1/events and
// handed to the alert hooks, so none of them can tell a different story.
import type { Trigger } from '../failover/index.ts';

export type { Trigger } from '../failover/index.ts';

export const TRIGGERS: readonly Trigger[] = ['automatic', 'operator', 'planned'];

/**
 * Every kind, documented in docs/events.md. Transitions carry `from` and `to`; the two actions
 * (failover, switchover) carry the old and the new active's names there and their phase in
 * `details.phase`.
 */
export const EVENT_KINDS = [
  /** The agent started (to: running) or is stopping (to: stopped). */
  'agent',
  /** This node's role: active, passive. */
  'role',
  /** The node's state word (docs/status.md, "States"). */
  'state',
  /** Whether this node holds the public identity: serving, stopped. */
  'serving',
  /** A link: details.link is channel, public or presence; from/to its states. */
  'link',
  /** An alarm raised (from clear to raised) or cleared; details.code and details.source. */
  'alarm',
  /** Replication paused or running again (tandem pause / resume). */
  'replication',
  /** The operator's maintenance hold: on, off. */
  'maintenance',
  /** The passive's lag: within or beyond alerts.lagOver. */
  'lag',
  /** A failover of this node: from the old active to this node; details.phase started|done|failed. */
  'failover',
  /** A switchover this node takes part in: from the old to the new active; details.phase. */
  'switchover',
  /** A start or stop script failed, or a check script changed its verdict: details.script. */
  'script',
  /** The application monitor (active node): healthy, restarting, failed… */
  'application',
  /** The control token was rotated (tandem token rotate). */
  'token',
  /** How a protected root is captured: from/to snapshot (consistency points) or file (file-level only); details.root. */
  'consistency',
  /** A promotion left out what the old active journaled past the last complete consistency point: details say how much. */
  'discard',
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];

export interface TandemEvent {
  /** Increases by one per event of this node; continues across restarts (the history keeps it). */
  seq: number;
  /** Wall-clock milliseconds since the epoch. */
  time: number;
  node: string;
  kind: EventKind;
  from: string | null;
  to: string | null;
  /** For people: why, in words. Code compares `kind`, `from`, `to` and `trigger`, never this. */
  reason: string;
  trigger: Trigger;
  details: Record<string, unknown>;
}

/** An event before the tracker stamps it. */
export type EventDraft = Omit<TandemEvent, 'seq' | 'time' | 'node' | 'details'> & { details?: Record<string, unknown> };

/** A reason longer than this is cut: reasons can carry text the peer sent (alarm messages). */
export const MAX_REASON_CHARS = 1000;
/** Details larger than this (as JSON) are replaced by a note saying so. */
export const MAX_DETAILS_BYTES = 4096;

/** Bounds what an event may carry, whatever its sources handed in. */
export function boundedDraft(d: EventDraft): EventDraft & { details: Record<string, unknown> } {
  const reason = d.reason.length > MAX_REASON_CHARS ? `${d.reason.slice(0, MAX_REASON_CHARS)}…` : d.reason;
  let details = d.details ?? {};
  if (JSON.stringify(details).length > MAX_DETAILS_BYTES) details = { truncated: true };
  return { ...d, reason, details };
}

/** Whether a decoded value has the shape of an event (the history file is read back). */
export function isEvent(v: unknown): v is TandemEvent {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    Number.isSafeInteger(e.seq) &&
    (e.seq as number) > 0 &&
    typeof e.time === 'number' &&
    typeof e.node === 'string' &&
    typeof e.kind === 'string' &&
    (EVENT_KINDS as readonly string[]).includes(e.kind) &&
    (e.from === null || typeof e.from === 'string') &&
    (e.to === null || typeof e.to === 'string') &&
    typeof e.reason === 'string' &&
    typeof e.trigger === 'string' &&
    (TRIGGERS as readonly string[]).includes(e.trigger) &&
    typeof e.details === 'object' &&
    e.details !== null &&
    !Array.isArray(e.details)
  );
}
