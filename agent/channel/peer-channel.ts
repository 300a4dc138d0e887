// The one channel between the two nodes, whatever their roles: each node listens and dials, so
// heartbeats flow and a restarted node learns its peer's role before it serves. When both
// dials succeed, both nodes keep the connection dialed by the node whose name sorts first
// (DRBD's way of resolving crossed connects), so they always agree on one connection.
import { EventEmitter } from 'node:events';
import type { Logger } from '../../shared/log.ts';
import { ChannelDialer } from './channel-dialer.ts';
import type { ChannelDialerOptions, ChannelServerOptions } from './channel-options.ts';
import { ChannelServer } from './channel-server.ts';
import type { PeerConnection } from './peer-connection.ts';

/**
 * The node whose dial is not the one kept waits this long before dialing (at start and after a
 * drop), so that the peer's dial usually arrives first and no session starts on a connection
 * that is closed a moment later. If the peer does not dial (it is down), this one still does.
 */
export const YIELD_DIAL_MS = 500;

export interface PeerChannelEvents {
  /** The connection to use from now on (any earlier one is closed). */
  connection: [conn: PeerConnection];
}

export class PeerChannel extends EventEmitter<PeerChannelEvents> {
  private readonly server: ChannelServer;
  private readonly dialer: ChannelDialer;
  private readonly log: Logger;
  /** The connection the lower-named node dialed is the one kept: for this node, inbound or not. */
  private readonly preferInbound: boolean;
  private current: PeerConnection | undefined;
  private closed = false;

  constructor(opts: { server: ChannelServerOptions; dialer: ChannelDialerOptions; log: Logger }) {
    super();
    this.server = new ChannelServer(opts.server);
    this.dialer = new ChannelDialer(opts.dialer);
    this.log = opts.log.child({ component: 'channel' });
    this.preferInbound = opts.server.peer < opts.server.self;
    this.server.on('connection', (conn) => this.offer(conn));
    this.dialer.on('connection', (conn) => this.offer(conn));
  }

  async start(): Promise<{ port: number }> {
    const r = await this.server.listen();
    this.dialer.start(this.preferInbound ? YIELD_DIAL_MS : 0);
    return r;
  }

  /** The connection in use, if one is open. */
  get connection(): PeerConnection | undefined {
    return this.current?.open === true ? this.current : undefined;
  }

  /** Closes the connection in use (both nodes then reconnect); e.g. after a role change. */
  reconnect(reason: string): void {
    this.current?.close('normal', reason);
  }

  private preferred(conn: PeerConnection): boolean {
    return (conn.direction === 'inbound') === this.preferInbound;
  }

  private offer(conn: PeerConnection): void {
    const cur = this.current;
    if (this.closed) {
      conn.close('normal', 'agent stopping');
      return;
    }
    if (cur !== undefined && cur !== conn && cur.open) {
      if (this.preferred(cur) && !this.preferred(conn)) {
        // Synchronous close inside the 'connection' event: no session ever sees this one.
        this.log.debug({ peer: conn.peer, direction: conn.direction }, 'channel: crossed connects, keeping the one the first-named node dialed');
        conn.close('normal', 'duplicate connection (crossed connects)');
        return;
      }
      cur.close('normal', 'replaced by a newer connection');
    }
    this.current = conn;
    conn.once('close', () => {
      if (this.current !== conn) return;
      this.current = undefined;
      this.dialer.resume(this.preferInbound ? YIELD_DIAL_MS : 0);
    });
    // While the preferred inbound connection serves, dialing would only make duplicates.
    if (conn.direction === 'inbound' && this.preferred(conn)) this.dialer.pause();
    this.emit('connection', conn);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.dialer.stop();
    await this.server.close();
  }
}
