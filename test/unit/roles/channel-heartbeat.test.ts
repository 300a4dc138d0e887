// The heartbeat round-trip: each side echoes the last heartbeat it heard and how long it held
// it, so the round-trip is the wire's, not the heartbeat interval's. Two heartbeats over an
// in-memory link with a fixed delay each way, on a fake clock.
import { describe, expect, it } from 'vitest';
import { ChannelHeartbeat, type OwnHeartbeat } from '../../../agent/roles/channel-heartbeat.ts';
import type { PeerLink } from '../../../agent/replication/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import type { Message } from '../../../shared/protocol/index.ts';

type TestEnd = PeerLink & { bytesIn: number; delayMs: number; open: boolean; closedWith: { code: string; message: string } | undefined; sent: Message[] };

/**
 * Two ends of a link that deliver each message `delayMs` after it was sent (`backMs` from the
 * second end; each end's `delayMs` may change). `bytesIn` of each end is what its stats()
 * report: a test moves it to stand for data arriving.
 */
function linkPair(clock: FakeClock, delayMs: number, backMs = delayMs): [TestEnd, TestEnd] {
  const make = (name: string, ms: number) => {
    const listeners = new Set<(m: Message) => void>();
    const closeListeners = new Set<() => void>();
    const end = {
      peer: name,
      open: true,
      bufferedAmount: 0,
      other: undefined as unknown as { listeners: Set<(m: Message) => void> },
      listeners,
      delayMs: ms,
      closedWith: undefined as { code: string; message: string } | undefined,
      sent: [] as Message[],
      send(m: Message) {
        end.sent.push(m);
        const to = end.other.listeners;
        clock.setTimeout(() => to.forEach((l) => l(m)), end.delayMs);
      },
      // Like PeerConnection: closed at once, its 'close' told before close() returns.
      close(code: string, message: string) {
        if (!end.open) return;
        end.open = false;
        end.closedWith = { code, message };
        closeListeners.forEach((l) => l());
      },
      on(event: string, l: (m: Message) => void) {
        if (event === 'message') listeners.add(l);
        if (event === 'close') closeListeners.add(l as () => void);
      },
      off(event: string, l: (m: Message) => void) {
        if (event === 'message') listeners.delete(l);
        if (event === 'close') closeListeners.delete(l as () => void);
      },
      bytesIn: 0,
      stats: () => ({ bytesIn: end.bytesIn, bytesOut: 0 }),
    };
    return end;
  };
  const a = make('beta', delayMs);
  const b = make('alpha', backMs);
  a.other = b;
  b.other = a;
  return [a as unknown as TestEnd, b as unknown as TestEnd];
}

const own = (role: 'active' | 'passive') => () => ({ role, epoch: 1, serving: role === 'active', publicState: 'ok' as const, inSync: true });
const peerView = (role: 'active' | 'passive') => ({ role, epoch: 1, serving: role === 'active', publicState: 'ok' as const, inSync: true, at: 0 });

/**
 * alpha (active) and beta (passive) beating over a link of `delayMs` from alpha, `backMs` back.
 * `echoes`: what the hello's protocol says (absent: learnt from the first echo).
 */
function beating(clock: FakeClock, delayMs: number, backMs: number, opts: { echoes?: boolean; alphaOwn?: () => OwnHeartbeat } = {}) {
  const [toBeta, toAlpha] = linkPair(clock, delayMs, backMs);
  const alpha = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: opts.alphaOwn ?? own('active') });
  const beta = new ChannelHeartbeat({ intervalMs: 1000, threshold: 5, clock, own: own('passive') });
  const attach = opts.echoes === undefined ? {} : { echoes: opts.echoes };
  alpha.attach(toBeta, peerView('passive'), attach);
  beta.attach(toAlpha, peerView('active'), attach);
  return { toBeta, toAlpha, alpha, beta };
}

/** beta (passive) alone on a link from alpha, which says nothing after its hello unless a test moves bytes. */
function betaAlone(clock: FakeClock, timing = { intervalMs: 1000, threshold: 5 }) {
  const [, toAlpha] = linkPair(clock, 0);
  const beta = new ChannelHeartbeat({ ...timing, clock, own: own('passive') });
  beta.attach(toAlpha, peerView('active'));
  return { toAlpha, beta };
}

/** Data arriving at `end` for `ms` (64 KiB every 250 ms), `looker` looking after each step. */
function flow(clock: FakeClock, end: TestEnd, ms: number, looker?: ChannelHeartbeat, bytes = 64 * 1024): void {
  for (let t = 0; t < ms; t += 250) {
    end.bytesIn += bytes;
    clock.advance(250);
    looker?.observe();
  }
}

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
    // 20 s without a heartbeat in time, bytes all along: the connection is kept.
    expect(toAlpha.closedWith).toBeUndefined();
    alpha.stop();
    beta.stop();
  });

  it('calls the channel down threshold intervals after the last byte, from the moment it came', () => {
    const clock = new FakeClock();
    const { toAlpha, beta } = betaAlone(clock);
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

describe('channel heartbeat: a silent connection', () => {
  it('is called down after interval × threshold, kept until twice that, then closed with TANDEM_ERR_CHANNEL_SILENT', () => {
    const clock = new FakeClock();
    const { toAlpha, beta } = betaAlone(clock);
    // alpha says nothing from its hello on (the link lost every packet since).
    clock.advance(5_500);
    expect(beta.observe().up).toBe(false);
    expect(toAlpha.open).toBe(true);
    clock.advance(4_500); // 10 s: twice the threshold, not more
    expect(toAlpha.open).toBe(true);
    const sentBefore = toAlpha.sent.length;
    clock.advance(1_000); // the next beat finds 11 s of silence
    expect(toAlpha.open).toBe(false);
    expect(toAlpha.closedWith?.code).toBe('TANDEM_ERR_CHANNEL_SILENT');
    expect(toAlpha.closedWith?.message).toMatch(/for 11000 ms \(2 × heartbeat\.interval × heartbeat\.threshold = 10000 ms\)/);
    const o = beta.observe();
    expect(o.up).toBe(false);
    // Down since the last sign (the hello), not since the close.
    expect(o.since).toBe(clock.now() - 11_000);
    // No heartbeat went out on it at the close, nor after.
    clock.advance(5_000);
    expect(toAlpha.sent.length).toBe(sentBefore);
    beta.stop();
  });

  it('counts the silence from the last byte: a connection that carried data until a moment ago is kept', () => {
    const clock = new FakeClock();
    const { toAlpha, beta } = betaAlone(clock, { intervalMs: 250, threshold: 4 });
    // 30 s of data and not one heartbeat, then silence: closed 2 s after the last byte (the
    // tuned timing), at the first beat past it.
    flow(clock, toAlpha, 30_000, beta);
    expect(toAlpha.open).toBe(true);
    clock.advance(2_000);
    expect(toAlpha.open).toBe(true);
    clock.advance(250);
    expect(toAlpha.closedWith?.code).toBe('TANDEM_ERR_CHANNEL_SILENT');
    beta.stop();
  });

  it('is closed on each side by its own count, and a new connection starts from a fresh sign', () => {
    const clock = new FakeClock();
    const { toBeta, toAlpha, alpha, beta } = beating(clock, 5, 5);
    clock.advance(30_000);
    expect([toBeta.open, toAlpha.open]).toEqual([true, true]);
    // Both directions lose every packet from now on.
    toBeta.delayMs = Number.MAX_SAFE_INTEGER;
    toAlpha.delayMs = Number.MAX_SAFE_INTEGER;
    clock.advance(11_000);
    expect(toBeta.closedWith?.code).toBe('TANDEM_ERR_CHANNEL_SILENT');
    expect(toAlpha.closedWith?.code).toBe('TANDEM_ERR_CHANNEL_SILENT');
    // The dialers' new connection: up at once, and kept while heartbeats pass.
    const [again, back] = linkPair(clock, 5);
    alpha.attach(again, peerView('passive'));
    beta.attach(back, peerView('active'));
    expect(beta.observe().up).toBe(true);
    clock.advance(30_000);
    expect([again.open, back.open]).toEqual([true, true]);
    expect(beta.observe().up).toBe(true);
    alpha.stop();
    beta.stop();
  });
});

describe("channel heartbeat: how late the peer's word arrives", () => {
  // alpha → beta carries the batches (slow: its heartbeats wait behind them); beta → alpha
  // carries acknowledgements and beta's heartbeats (fast).
  it("is the round-trip while alpha's heartbeats wait behind data, and stays what it was once alpha falls silent", () => {
    const clock = new FakeClock();
    const { toBeta, toAlpha, alpha, beta } = beating(clock, 8_000, 1);
    flow(clock, toAlpha, 20_000, beta);
    expect(beta.observe().delayMs).toBeGreaterThanOrEqual(7_000);
    expect(beta.observe().delayMs).toBeLessThanOrEqual(9_100);
    // alpha dies. What it had sent still arrives for 8 s (its batches, and its heartbeats among
    // them), then nothing. What beta knew stays as of alpha's last sign; the silence itself is
    // not delay (else every failover would see a passive behind).
    alpha.stop();
    flow(clock, toAlpha, 8_000, beta);
    const o = beta.observe();
    expect(o.up).toBe(true);
    expect(o.delayMs).toBeGreaterThanOrEqual(7_000);
    toBeta.open = false;
    clock.advance(30_000);
    const down = beta.observe();
    expect(down.up).toBe(false);
    expect(down.delayMs).toBe(o.delayMs);
    beta.stop();
  });

  it("grows while beta's heartbeats go unanswered and data keeps coming, before any late echo returns", () => {
    const clock = new FakeClock();
    const { toBeta, toAlpha, alpha, beta } = beating(clock, 5, 1);
    clock.advance(3_000);
    expect(beta.observe().delayMs).toBeLessThanOrEqual(10);
    // The link slows down to 30 s one way: for the next 10 s no heartbeat of alpha arrives,
    // only bytes. The last round-trip measured (6 ms) no longer says how late alpha's word is.
    toBeta.delayMs = 30_000;
    flow(clock, toAlpha, 10_000, beta);
    const o = beta.observe();
    expect(o.up).toBe(true);
    expect(o.delayMs).toBeGreaterThanOrEqual(8_000);
    alpha.stop();
    beta.stop();
  });

  it('falls back to the round-trip at the first answer once the link is fast again', () => {
    const clock = new FakeClock();
    const { toBeta, toAlpha, alpha, beta } = beating(clock, 8_000, 1);
    flow(clock, toAlpha, 12_000);
    expect(beta.observe().delayMs).toBeGreaterThanOrEqual(7_000);
    // The queue drained: heartbeats arrive 400 ms after they leave (a long way, nothing queued).
    // The ones still queued arrive first (8 s late), then the others; data still flows.
    toBeta.delayMs = 400;
    flow(clock, toAlpha, 10_000, beta);
    const o = beta.observe();
    expect(o.delayMs).toBeGreaterThanOrEqual(400);
    expect(o.delayMs).toBeLessThanOrEqual(402);
    // The smoothed figure for the operator keeps the trend; the delay is the last sample's.
    expect(o.rttMs).toBeGreaterThan(450);
    // Below a quarter interval a round-trip is no queue, and no lag.
    toBeta.delayMs = 5;
    flow(clock, toAlpha, 3_000, beta);
    expect(beta.observe().delayMs).toBe(0);
    alpha.stop();
    beta.stop();
  });

  it('ignores a peer that never echoes (an older agent): its silence about round-trips is not delay', () => {
    const clock = new FakeClock();
    const { toAlpha, beta } = betaAlone(clock);
    flow(clock, toAlpha, 10_000, beta, 1000);
    expect(beta.observe().delayMs).toBe(0);
    beta.stop();
  });

  it("counts unanswered heartbeats from the start when the peer's protocol says it echoes", () => {
    const clock = new FakeClock();
    // Slow from the first byte: no echo comes back for 8 s.
    const { toAlpha, alpha, beta } = beating(clock, 8_000, 1, { echoes: true });
    flow(clock, toAlpha, 6_000);
    expect(beta.observe().rttMs).toBeUndefined();
    expect(beta.observe().delayMs).toBeGreaterThanOrEqual(4_500);
    alpha.stop();
    beta.stop();
  });

  it("is 0 on a link that carries only heartbeats: an idle pair's round-trip is no lag", () => {
    const clock = new FakeClock();
    const { toAlpha, alpha, beta } = beating(clock, 150, 150, { echoes: true });
    clock.advance(5_000);
    expect(beta.observe().rttMs).toBeCloseTo(300, 6);
    expect(beta.observe().delayMs).toBe(0);
    // A write: its bytes arrive, and for two intervals after them the round-trip counts.
    toAlpha.bytesIn += 4096;
    clock.advance(100);
    expect(beta.observe().delayMs).toBe(300);
    clock.advance(2_500);
    expect(beta.observe().delayMs).toBe(0);
    alpha.stop();
    beta.stop();
  });

  it("counts what the active says it has not sent yet, with no data flowing (its window is full)", () => {
    const clock = new FakeClock();
    let unsentMs = 0;
    const { alpha, beta } = beating(clock, 10, 10, { echoes: true, alphaOwn: () => ({ ...own('active')(), unsentMs }) });
    clock.advance(3_000);
    expect(beta.observe().delayMs).toBe(0);
    // alpha holds 6 s of journal it cannot send (beta acknowledges nothing): only heartbeats come.
    unsentMs = 6_000;
    clock.advance(1_100); // alpha's next heartbeat says so
    const o = beta.observe();
    // 6 s old when said, 20 ms on the way, and up to an interval since.
    expect(o.delayMs).toBeGreaterThanOrEqual(6_020);
    expect(o.delayMs).toBeLessThanOrEqual(7_020);
    // All sent: the next word says so.
    unsentMs = 0;
    clock.advance(1_000);
    expect(beta.observe().delayMs).toBe(0);
    alpha.stop();
    beta.stop();
  });
});
