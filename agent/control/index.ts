// The control API (HTTP) and the status document it serves. It reads the components' state and
// never changes replication by itself; it must never answer with a guess (unknown is "unknown"),
// and never let in a request whose Host, credential or origin it cannot vouch for.
export { ControlServer } from './control-server.ts';
export type { ControlServerOptions, ActionAnswer } from './control-server.ts';
export { ControlAuth, controlToken, sessionCookieName, SESSION_COOKIE, TOKEN_SALT, LOGIN_TICKET_TTL_MS } from './control-auth.ts';
export { hostMatcher, isLoopbackHost, MAX_CONTROL_CONNECTIONS, MAX_CONTROL_CONNECTIONS_PER_ADDRESS, CONTROL_IDLE_MS, MAX_EVENT_STREAMS } from './request-guard.ts';
export { buildStatus } from './status.ts';
export type { AgentStatus, StatusInputs, NodeStateName, RootSummary } from './status.ts';
export { StatusHistory, HISTORY_FIELDS, HISTORY_SAMPLE_MS, HISTORY_WINDOW_MS } from './status-history.ts';
export { PeerRelay, RELAY_READS, RELAY_WRITES, MAX_RELAYED } from './peer-relay.ts';
export { builtInDashboard, DashboardFiles, DASHBOARD_PATH, LOGIN_PATH } from './dashboard.ts';
export type { DashboardAssets } from './dashboard.ts';
