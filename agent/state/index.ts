// The node's own durable facts (role, generation, unfinished synchronisation) and the lock on
// its state directory, kept private (0700/0600). It must never write a state file in place,
// never share a directory, never leave its state readable by other users.
export { NodeStateStore, acquireStateLock, newGeneration } from './node-state.ts';
export type { NodeState } from './node-state.ts';
export { tightenPrivateState } from './private-state.ts';
export type { TightenReport, TightenedPath } from './private-state.ts';
