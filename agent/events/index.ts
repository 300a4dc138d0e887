// The state tracker and what reads it: every change of the node's role, state, links, alarms and
// operator holds becomes one typed event {seq, time, node, kind, from, to, reason, trigger,
// details}, logged once, kept in a bounded history on disk, streamed on /v1/events, counted in
// /metrics and handed to the alert hooks. It decides nothing, and must never block or delay a
// decision: events are stamped inline, everything slow (alerts) runs on its own.
export { StateTracker } from './state-tracker.ts';
export type { StateTrackerOptions } from './state-tracker.ts';
export { EventHistory, EVENTS_FILE, MAX_EVENTS_PER_READ } from './event-history.ts';
export { EVENT_KINDS, TRIGGERS, isEvent, boundedDraft } from './event.ts';
export type { TandemEvent, EventDraft, EventKind, Trigger } from './event.ts';
export { snapshotOf, diffSnapshots, stateReason, lagBeyond } from './snapshot-diff.ts';
export type { Snapshot } from './snapshot-diff.ts';
export { AlertHooks, worthAlerting, DEFAULT_ALERT_KINDS, ALERT_QUEUE_MAX } from './alert-hooks.ts';
export { MeteredScripts } from './metered-scripts.ts';
export { renderTandemMetrics, metricFamilies, NODE_STATES, CONTROL_REFUSALS } from './metrics.ts';
export type { MetricsInputs, ScriptStats, ControlRefusal } from './metrics.ts';
export { renderMetrics, PROMETHEUS_CONTENT_TYPE } from './prometheus-text.ts';
