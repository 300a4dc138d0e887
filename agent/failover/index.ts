// Failover: the decision of what this node must do about its role (a pure state machine over
// the links' observations) and the runner that feeds it and carries out its effects. It must
// never let two nodes serve, and never take over from an active that is merely slow.
export { step, initialState } from './decision.ts';
export type { DecisionState, DecisionConfig, Observations, PeerView, Effect, Input, Action, PublicState, PresenceState, Trigger } from './decision.ts';
export { FailoverRunner } from './failover-runner.ts';
export type { FailoverRunnerOptions, FailoverStatus, RunnerStep, PublicView, PresenceViewSource, Monitor } from './failover-runner.ts';
