// The node's own durable facts (role, generation, unfinished synchronisation) and the lock on
// its state directory. It must never write a state file in place, never share a directory.
export { NodeStateStore, acquireStateLock, newGeneration } from './node-state.ts';
export type { NodeState } from './node-state.ts';
