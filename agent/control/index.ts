// The control API (HTTP) and the status document it serves. It reads the components' state and
// never changes replication by itself; it must never answer with a guess (unknown is "unknown").
export { ControlServer, controlToken } from './control-server.ts';
export { buildStatus } from './status.ts';
export type { AgentStatus, StatusInputs, NodeStateName } from './status.ts';
