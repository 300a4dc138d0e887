// The heartbeat round-trip: each side echoes the last heartbeat it heard and how long it held
// it, so the round-trip is the wire's, not the heartbeat interval's. Two heartbeats over an
// in-memory link with a fixed delay each way, on a fake clock.
import { describe, expect, it } from 'vitest';
import { ChannelHeartbeat } from '../../../agent/roles/channel-heartbeat.ts';
import type { PeerLink } from '../../../agent/replication/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import type { Message } from '../../../shared/protocol/index.ts';

/**
 * Two ends of a link that deliver each message `delayMs` after it was sent. `bytesIn` of each
 * end is what its stats() report: a test moves it to stand for data arriving.
 */
function linkPair(clock: FakeClock, delayMs: number): [PeerLink & { bytesIn: number }, PeerLink & { bytesIn: number }] {
  const make = (name: string) => {
    const listeners = new Set<(m: Message) => void>();
    const end = {
      peer: name,
      open: true,
      bufferedAmount: 0,
      other: undefined as unknown as { listeners: Set<(m: Message) => void> },
      listeners,
      send(m: Message) {
        const to = end.other.listeners;
        clock.setTimeout(() => to.forEach((l) => l(m)), delayMs);
      },
      close() {},
      on(event: string, l: (m: Message) => void) {
        if (event === 'message') listeners.add(l);
      },
      off(event: string, l: (m: Message) => void) {
        if (event === 'message') listeners.delete(l);
      },
      bytesIn: 0,
      stats: () => ({ bytesIn: end.bytesIn, bytesOut: 0 }),
    };
    return end;
  };
  const a = make('beta');
  const b = make('alpha');
  a.other = b;
  b.other = a;
  return [a as unknown as PeerLink & { bytesIn: number }, b as unknown as PeerLink & { bytesIn: number }];
}

const own = (role: 'active' | 'passive') => () => ({ role, epoch: 1, serving: role === 'active', publicState: 'ok' as const, inSync: true });
const peerView = (role: 'active' | 'passive') => ({ role, epoch: 1, serving: role === 'active', publicState: 'ok' as const, inSync: true, at: 0 });

describe('channel heartbeat round-trip', () => {
  it('measures twice the one-way delay, whatever the interval between heartbeats', () => {
    const clock = new FakeClock();
    const [toBeta, toAlpha] = linkPair(clock, 30);
    const alpha = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('active') });
    const beta = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('passive') });
    alpha.attach(toBeta, peerView('passive'));
    clock.advance(400); // beta starts later: its heartbeats are not in step with alpha's
    beta.attach(toAlpha, peerView('active'));
    expect(alpha.observe().rttMs).toBeUndefined();
    clock.advance(5000);
    expect(alpha.observe().rttMs).toBeCloseTo(60, 6);
    expect(beta.observe().rttMs).toBeCloseTo(60, 6);
    alpha.stop();
    beta.stop();
  });

  it('forgets the round-trip of a previous connection', () => {
    const clock = new FakeClock();
    const [toBeta, toAlpha] = linkPair(clock, 30);
    const alpha = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('active') });
    const beta = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('passive') });
    alpha.attach(toBeta, peerView('passive'));
    beta.attach(toAlpha, peerView('active'));
    clock.advance(3000);
    expect(alpha.observe().rttMs).toBeCloseTo(60, 6);
    const [toBeta2] = linkPair(clock, 5);
    alpha.attach(toBeta2, peerView('passive'));
    expect(alpha.observe().rttMs).toBeUndefined();
    alpha.stop();
    beta.stop();
  });

  it('tells a listener each view of the peer the moment it arrives, a hello or a heartbeat, until it unsubscribes', () => {
    const clock = new FakeClock();
    const [toBeta, toAlpha] = linkPair(clock, 30);
    const alpha = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('active') });
    let betaRole: 'active' | 'passive' = 'passive';
    const beta = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: () => ({ ...own(betaRole)(), epoch: betaRole === 'active' ? 2 : 1 }) });
    const heard: string[] = [];
    const stop = alpha.onPeer((p) => heard.push(`${p.role}@${p.epoch}`));
    alpha.attach(toBeta, peerView('passive'));
    beta.attach(toAlpha, peerView('active'));
    expect(heard).toEqual(['passive@1']);
    clock.advance(30); // beta's first heartbeat reaches alpha
    expect(heard).toEqual(['passive@1', 'passive@1']);
    // beta takes over and says so at once (beat() after a role change): alpha hears it 30 ms
    // later, not at its next look.
    betaRole = 'active';
    beta.beat();
    clock.advance(30);
    expect(heard.at(-1)).toBe('active@2');
    stop();
    const n = heard.length;
    clock.advance(3000);
    expect(heard.length).toBe(n);
    alpha.stop();
    beta.stop();
  });
});

describe('channel heartbeat: signs of life', () => {
  it('keeps the channel up while data arrives, however long a heartbeat waits behind it', () => {
    const clock = new FakeClock();
    // alpha's heartbeats reach beta 12 s late: behind megabytes of batches on a slow link.
    const [toBeta, toAlpha] = linkPair(clock, 12_000);
    const alpha = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('active') });
    const beta = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('passive') });
    alpha.attach(toBeta, peerView('passive'));
    beta.attach(toAlpha, peerView('active'));
    for (let t = 0; t < 20_000; t += 250) {
      toAlpha.bytesIn += 64 * 1024; // the batches keep coming
      clock.advance(250);
      expect(beta.observe().up).toBe(true);
    }
    expect(beta.observe().longestGapMs).toBeLessThanOrEqual(1000);
    alpha.stop();
    beta.stop();
  });

  it('calls the channel down threshold intervals after the last byte, from the moment it came', () => {
    const clock = new FakeClock();
    const [, toAlpha] = linkPair(clock, 0);
    const beta = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('passive') });
    beta.attach(toAlpha, peerView('active'));
    // Bytes for 3 s, no heartbeat at all (alpha hangs after its hello), then nothing.
    for (let t = 0; t < 3000; t += 100) {
      toAlpha.bytesIn += 1000;
      clock.advance(100);
      beta.observe();
    }
    const lastByte = clock.now();
    clock.advance(4000);
    expect(beta.observe().up).toBe(true);
    clock.advance(2000);
    const o = beta.observe();
    expect(o.up).toBe(false);
    // Bytes are seen at the next look: at most one look (here 100 ms) after they came.
    expect(o.since).toBeGreaterThanOrEqual(lastByte - 100);
    expect(o.since).toBeLessThanOrEqual(lastByte);
    beta.stop();
  });
});
