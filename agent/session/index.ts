// The session layer of the channel: per connection, the hello gate and one dispatcher that
// routes each message family to the one part of the node that registered for it, refusing in
// one place what nothing takes. It must never interpret a message's content (its handlers do),
// never act on anything before a valid hello, and never open or own a socket.
export { Session } from './session.ts';
export type { SessionOptions, SessionCounters } from './session.ts';
export { Dispatcher } from './dispatcher.ts';
export type { Dispatched, MessageHandler } from './dispatcher.ts';
export { MESSAGE_FAMILIES } from './message-family.ts';
export type { MessageFamily } from './message-family.ts';
export { MemoryLink } from './memory-link.ts';
export type { MemoryLinkOptions } from './memory-link.ts';
