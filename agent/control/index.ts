// The control API (HTTP) and the status document it serves. It reads the components' state and
// never changes replication by itself; it must never answer with a guess (unknown is "unknown"),
// and never let in a request whose Host, credential or origin it cannot vouch for.
export { ControlServer } from './control-server.ts';
export type { ControlServerOptions, ActionAnswer } from './control-server.ts';
export { ControlAuth, controlToken, SESSION_COOKIE, TOKEN_SALT } from './control-auth.ts';
export { hostMatcher, isLoopbackHost, MAX_CONTROL_CONNECTIONS, MAX_CONTROL_CONNECTIONS_PER_ADDRESS, CONTROL_IDLE_MS, MAX_EVENT_STREAMS } from './request-guard.ts';
export { buildStatus } from './status.ts';
export type { AgentStatus, StatusInputs, NodeStateName } from './status.ts';
