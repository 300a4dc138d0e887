// What an operator holds on this node (maintenance, a replication pause, the control token's
// salt) and whether a switchover may start. It keeps what was asked and says what would happen;
// it never changes a role or replication by itself (agent/failover and the sessions do).
export { OperatorSettingsStore, OPERATOR_FILE, MAX_REASON_CHARS } from './operator-settings.ts';
export type { OperatorSettings, Hold } from './operator-settings.ts';
export { DrainMeter } from './drain-meter.ts';
export { OperatorActions } from './operator-actions.ts';
export type { OperatorActionsOptions } from './operator-actions.ts';
export { switchoverReadiness, drainEstimate, SWITCHOVER_DRAIN_LIMIT_MS } from './switchover-readiness.ts';
export type { SwitchoverReadiness, DrainEstimate } from './switchover-readiness.ts';
