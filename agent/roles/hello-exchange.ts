// The first message each way on every channel connection, whatever the roles: who I am, my
// role and epoch, and where my data stands. The peer's hello is handed on *synchronously*: the
// peer may send its first batch in the same packet as its hello, and ws emits both in one tick,
// so the session that needs the batch must be listening before the handler returns.
import { TandemError } from '../../shared/errors.ts';
import type { Clock } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import type { HelloMessage, Message } from '../../shared/protocol/index.ts';
import { negotiateProtocol, peerProtocol, type ProtocolRange } from '../../shared/version.ts';
import type { PeerLink } from '../replication/index.ts';

export interface HelloExchangeOptions {
  pair: string;
  blockSize: number;
  timeoutMs: number;
  /** The protocol versions this node speaks; the session runs at the highest both speak. */
  protocol: ProtocolRange;
  clock: Clock;
  log: Logger;
  /** Called inside the message handler with the peer's valid hello and the session's protocol. */
  onPeerHello: (hello: HelloMessage, protocol: number) => void;
}

export function exchangeHello(link: PeerLink, own: HelloMessage, opts: HelloExchangeOptions): void {
  let done = false;
  const fail = (code: 'TANDEM_ERR_PROTOCOL' | 'TANDEM_ERR_PEER_UNEXPECTED', reason: string) => {
    const err = new TandemError({ code, op: `hello with ${link.peer}`, reason, hint: 'see docs/errors.md' });
    opts.log.error({ peer: link.peer, err, code }, `channel: ${err.message}`);
    link.close(code, reason);
  };
  const timer = opts.clock.setTimeout(() => {
    if (done) return;
    done = true;
    link.off('message', onMessage);
    if (link.open) fail('TANDEM_ERR_PROTOCOL', `the peer sent no hello within ${opts.timeoutMs} ms`);
  }, opts.timeoutMs);
  const onMessage = (m: Message) => {
    if (done || m.t !== 'hello') return;
    done = true;
    timer.cancel();
    link.off('message', onMessage);
    const agreed = negotiateProtocol(opts.protocol, peerProtocol(m));
    if (!agreed.ok) return fail('TANDEM_ERR_PROTOCOL', agreed.reason);
    if (m.pair !== opts.pair) return fail('TANDEM_ERR_PEER_UNEXPECTED', `the peer belongs to pair ${m.pair}`);
    if (m.blockSize !== opts.blockSize) {
      return fail('TANDEM_ERR_PEER_UNEXPECTED', `the peer uses blockSize ${m.blockSize}, this node ${opts.blockSize}: set the same blockSize on both nodes`);
    }
    opts.onPeerHello(m, agreed.version);
  };
  link.on('message', onMessage);
  link.send(own);
}
