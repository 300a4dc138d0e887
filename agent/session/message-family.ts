// Which part of a node takes which message: a family is the set of message types one handler
// owns on a connection. The table is the only place that says so; a message type missing from
// it does not compile (see `Unassigned` below), so adding a message edits one line here.
import type { Message } from '../../shared/protocol/index.ts';

export const MESSAGE_FAMILIES = {
  /** The first message each way: the session's own gate (session.ts). */
  hello: ['hello'],
  /** Each side's view every interval (agent/roles/channel-heartbeat.ts). */
  heartbeat: ['hb'],
  /** A planned handover and its answer (agent/roles/role-controller.ts). */
  handover: ['takeover', 'takeover-result'],
  /**
   * What a passive's receiver takes from its active. Verify questions ride here: they must
   * follow the batches in order (the passive answers once it applied up to the question's point).
   */
  'to-passive': ['batch', 'peer-state', 'manifest-request', 'split-brain', 'verify-list', 'verify-entry'],
  /** What an active's sender (and its verifier) takes from its passive. */
  'to-active': ['ack', 'peer-state', 'manifest-chunk', 'manifest-end', 'verify-reply'],
} as const satisfies Record<string, readonly Message['t'][]>;

export type MessageFamily = keyof typeof MESSAGE_FAMILIES;

/** `error` is the connection's own (logged there, and the close follows it). */
type Unassigned = Exclude<Message['t'], (typeof MESSAGE_FAMILIES)[MessageFamily][number] | 'error'>;
// Fails to compile when a message type has no family.
const everyTypeHasAFamily: [Unassigned] extends [never] ? true : Unassigned = true;
void everyTypeHasAFamily;
