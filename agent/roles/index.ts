// Roles: the engines of the active node (journal, capture, sender) and of the passive node
// (receive log, applier, receiver), and the controller that switches between them and runs the
// scripts. It carries out role changes and never decides them (agent/failover decides).
export { RoleController } from './role-controller.ts';
export type { RoleControllerOptions, RoleChannel, Scripts, ScriptName, Outcome } from './role-controller.ts';
export { ActiveEngine } from './active-engine.ts';
export { PassiveEngine } from './passive-engine.ts';
export { ChannelHeartbeat } from './channel-heartbeat.ts';
export type { ChannelObservation, OwnHeartbeat } from './channel-heartbeat.ts';
export type { EngineDeps } from './engine-deps.ts';
