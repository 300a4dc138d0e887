// A replication channel with nothing between the two agents, that can still be cut: each node's
// channel listens on an address of its own on the loopback of a private network namespace, and
// cutting removes both addresses (a connect then fails at once with ENETUNREACH, and what was in
// flight is lost, like a cable pulled), restoring adds them back. A userspace proxy copies every
// byte through one more process: for a benchmark of the data path that is work the real pair
// never does. It must never run in the machine's own namespace: there a removed address could
// send the agents' packets out by the default route, so every change first checks that the
// namespace has no interface but its loopback.
import { ip } from './network-lab.ts';

/** The two channel addresses: a /32 each on the namespace's loopback. */
export const DIRECT_CHANNEL_ADDRESSES = { alpha: '10.203.0.1', beta: '10.203.0.2' } as const;

/** True when this process's network namespace has no interface but `lo`: nothing sent here can leave. */
export function loopbackOnly(): boolean {
  let links: string;
  try {
    links = ip(['-o', 'link', 'show']);
  } catch {
    return false;
  }
  const names = links
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => /^\d+:\s*([^:@\s]+)/.exec(l)?.[1]);
  return names.length === 1 && names[0] === 'lo';
}

/** network-lab's ip(), where adding an address already there, or removing one already gone, is the state wanted. */
function ipAddr(args: string[]): void {
  try {
    ip(args);
  } catch (err) {
    if (!/File exists|Cannot assign requested address/.test((err as Error).message)) throw err;
  }
}

export class DirectChannel {
  readonly addresses = DIRECT_CHANNEL_ADDRESSES;

  /** Adds the addresses; throws outside a private network namespace. */
  static open(): DirectChannel {
    const d = new DirectChannel();
    d.set(true);
    return d;
  }

  /** Cuts the channel (true) or restores it (false). */
  cut(cut: boolean): void {
    this.set(!cut);
  }

  private set(up: boolean): void {
    if (!loopbackOnly()) throw new Error('a direct channel is cut by removing its addresses: only in a network namespace with no interface but lo (ip netns exec)');
    for (const a of Object.values(this.addresses)) ipAddr(['addr', up ? 'add' : 'del', `${a}/32`, 'dev', 'lo']);
  }
}
