// The one place where a message from the peer is routed to the part of the node that takes it,
// and where a message nothing takes is refused (Syncthing's protocol dispatcher: one loop, one
// switch, the unknown refused there). It is pure routing: no I/O, no timers.
import type { Message } from '../../shared/protocol/index.ts';
import { MESSAGE_FAMILIES, type MessageFamily } from './message-family.ts';

export type MessageHandler = (m: Message) => void;

/** What became of one message. */
export type Dispatched =
  | { kind: 'handled'; family: MessageFamily }
  /** Its family had a handler on this connection that has let go (a session that ended while
   * the connection stays open, e.g. during a role change): a late message, dropped. */
  | { kind: 'late'; family: MessageFamily }
  /** An `error` message: the connection logged it and closes. */
  | { kind: 'error' }
  /** Nothing on this node takes it on this connection: the caller refuses it. */
  | { kind: 'unexpected'; family: MessageFamily | undefined; reason: string };

const FAMILY_BY_TYPE = new Map<string, MessageFamily[]>();
for (const [family, types] of Object.entries(MESSAGE_FAMILIES) as [MessageFamily, readonly string[]][]) {
  for (const t of types) FAMILY_BY_TYPE.set(t, [...(FAMILY_BY_TYPE.get(t) ?? []), family]);
}

export class Dispatcher {
  private readonly handlers = new Map<MessageFamily, MessageHandler>();
  /** Families that had a handler on this connection: their late messages are dropped, not refused. */
  private readonly retired = new Set<MessageFamily>();

  /**
   * Routes `family` to `handler` until the returned function is called. One handler per family,
   * and one family per message type on a connection (a node is active or passive, not both).
   */
  register(family: MessageFamily, handler: MessageHandler): () => void {
    if (this.handlers.has(family)) throw new Error(`dispatcher: ${family} already has a handler`);
    for (const t of MESSAGE_FAMILIES[family]) {
      const other = FAMILY_BY_TYPE.get(t)!.find((f) => f !== family && this.handlers.has(f));
      if (other !== undefined) throw new Error(`dispatcher: ${t} is taken by ${other} already`);
    }
    this.handlers.set(family, handler);
    this.retired.delete(family);
    return () => {
      if (this.handlers.get(family) !== handler) return;
      this.handlers.delete(family);
      this.retired.add(family);
    };
  }

  has(family: MessageFamily): boolean {
    return this.handlers.has(family);
  }

  /** Hands `m` to its handler (synchronously: the next message may already be waiting). */
  dispatch(m: Message): Dispatched {
    if (m.t === 'error') return { kind: 'error' };
    const families = FAMILY_BY_TYPE.get(m.t);
    if (families === undefined) return { kind: 'unexpected', family: undefined, reason: `a ${JSON.stringify(m.t)} message, which no part of this node takes` };
    for (const family of families) {
      const h = this.handlers.get(family);
      if (h !== undefined) {
        h(m);
        return { kind: 'handled', family };
      }
    }
    const late = families.find((f) => this.retired.has(f));
    if (late !== undefined) return { kind: 'late', family: late };
    const family = families.length === 1 ? families[0] : undefined;
    return { kind: 'unexpected', family, reason: `a ${m.t} message (${families.join(' or ')}), which this node does not take on this connection` };
  }
}
