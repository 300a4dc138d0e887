// The session layer over an in-memory link on a fake clock: the hello gate, one dispatcher
// routing each family to its handler, and the one place where a message nothing takes is
// refused (with its code, on both ends). No sockets, no real time.
import { describe, expect, it } from 'vitest';
import { Dispatcher, MESSAGE_FAMILIES, MemoryLink, Session, type SessionOptions } from '../../../agent/session/index.ts';
import type { PeerLink } from '../../../agent/replication/index.ts';
import { ChannelHeartbeat } from '../../../agent/roles/channel-heartbeat.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { HelloMessage, Message } from '../../../shared/protocol/index.ts';
import { memoryLogger } from '../apply/helpers.ts';

const hello = (node: string, role: 'active' | 'passive', over: Partial<HelloMessage> = {}): HelloMessage => ({
  t: 'hello', proto: 1, protoMax: 2, version: '0.1.0', pair: 'p1', node, role, generation: 'g1', epoch: 1, serving: role === 'active', blockSize: 65536, headSeq: 0, firstSeq: 0, appliedSeq: 0, syncId: '', ...over,
});

function sessionOpts(clock: FakeClock, over: Partial<SessionOptions> = {}): SessionOptions & { hellos: HelloMessage[] } {
  const hellos: HelloMessage[] = [];
  return { pair: 'p1', blockSize: 65536, helloTimeoutMs: 5000, protocol: { min: 1, max: 2 }, clock, log: silentLogger(), onPeerHello: (h) => hellos.push(h), hellos, ...over };
}

describe('session', () => {
  it('passes the peer hello on at the protocol both speak, and only then routes other families', () => {
    const clock = new FakeClock();
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta');
    const protocols: number[] = [];
    const a = new Session(atAlpha, sessionOpts(clock, { onPeerHello: (_h, p) => protocols.push(p) }));
    const heard: Message[] = [];
    const b = new Session(atBeta, sessionOpts(clock, { protocol: { min: 1, max: 1 }, onPeerHello: () => b.handle('heartbeat', (m) => heard.push(m)) }));
    a.start(hello('alpha', 'active'));
    b.start(hello('beta', 'passive', { protoMax: undefined }));
    clock.advance(0);
    expect(protocols).toEqual([1]);
    expect(b.peerHello?.node).toBe('alpha');
    atAlpha.send({ t: 'hb', seq: 1, role: 'active', epoch: 1, serving: true, publicState: 'ok', inSync: true });
    clock.advance(0);
    expect(heard.map((m) => m.t)).toEqual(['hb']);
    expect(atBeta.open).toBe(true);
  });

  it('routes each family to its own handler, and a port carries its family only', () => {
    const clock = new FakeClock();
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta');
    const seen: Record<string, string[]> = { heartbeat: [], handover: [], 'to-passive': [] };
    const b = new Session(atBeta, sessionOpts(clock, {
      onPeerHello: () => {
        b.handle('heartbeat', (m) => seen.heartbeat!.push(m.t));
        b.handle('handover', (m) => seen.handover!.push(m.t));
        b.port('to-passive').on('message', (m) => seen['to-passive']!.push(m.t));
      },
    }));
    b.start(hello('beta', 'passive'));
    atAlpha.send(hello('alpha', 'active'));
    atAlpha.send({ t: 'hb', seq: 1, role: 'active', epoch: 1, serving: true, publicState: 'ok', inSync: true });
    atAlpha.send({ t: 'peer-state', state: 'streaming', headSeq: 4 });
    atAlpha.send({ t: 'takeover', epoch: 2, headSeq: 4, reason: 'planned switchover' });
    atAlpha.send({ t: 'verify-list', req: 1, afterSeq: 0, root: 'data', path: '' });
    clock.advance(0);
    expect(seen).toEqual({ heartbeat: ['hb'], handover: ['takeover'], 'to-passive': ['peer-state', 'verify-list'] });
    expect(b.stats().handled).toBe(5);
  });

  it('refuses in one place a message of a family nothing on this node takes, with TANDEM_ERR_MESSAGE_UNEXPECTED at both ends', () => {
    const clock = new FakeClock();
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta');
    const { log, lines } = memoryLogger();
    const acks: Message[] = [];
    // An active: its sender takes what a passive sends, never a batch.
    const a = new Session(atAlpha, sessionOpts(clock, { log, onPeerHello: () => a.port('to-active').on('message', (m) => acks.push(m)) }));
    a.start(hello('alpha', 'active'));
    atBeta.send(hello('beta', 'passive'));
    atBeta.send({ t: 'ack', seq: 3 });
    atBeta.send({ t: 'batch', first: 4, last: 4, frames: new Uint8Array(8) });
    atBeta.send({ t: 'ack', seq: 4 });
    clock.advance(0);
    expect(acks.map((m) => m.t)).toEqual(['ack']);
    expect(atAlpha.closedWith).toMatchObject({ code: 'TANDEM_ERR_MESSAGE_UNEXPECTED', byPeer: false });
    expect(atBeta.closedWith).toMatchObject({ code: 'TANDEM_ERR_MESSAGE_UNEXPECTED', byPeer: true });
    const refused = lines.find((l) => l.code === 'TANDEM_ERR_MESSAGE_UNEXPECTED');
    expect(refused).toMatchObject({ family: 'to-passive', type: 'batch' });
  });

  it('refuses anything before the hello, and a second hello', () => {
    const clock = new FakeClock();
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta');
    new Session(atAlpha, sessionOpts(clock)).start(hello('alpha', 'active'));
    atBeta.send({ t: 'hb', seq: 1, role: 'passive', epoch: 1, serving: false, publicState: 'ok', inSync: false });
    clock.advance(0);
    expect(atAlpha.closedWith).toMatchObject({ code: 'TANDEM_ERR_MESSAGE_UNEXPECTED', reason: 'hb before the hello' });

    const [atAlpha2, atBeta2] = MemoryLink.pair(clock, 'alpha', 'beta');
    const opts = sessionOpts(clock);
    new Session(atAlpha2, opts).start(hello('alpha', 'active'));
    atBeta2.send(hello('beta', 'passive'));
    atBeta2.send(hello('beta', 'passive'));
    clock.advance(0);
    expect(opts.hellos).toHaveLength(1);
    expect(atAlpha2.closedWith).toMatchObject({ code: 'TANDEM_ERR_MESSAGE_UNEXPECTED', reason: 'a second hello on one connection' });
  });

  it('refuses a hello of another pair or block size, and closes when none comes within the timeout', () => {
    const clock = new FakeClock();
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta');
    const opts = sessionOpts(clock);
    new Session(atAlpha, opts).start(hello('alpha', 'active'));
    atBeta.send(hello('beta', 'passive', { blockSize: 4096 }));
    clock.advance(0);
    expect(opts.hellos).toEqual([]);
    expect(atAlpha.closedWith?.code).toBe('TANDEM_ERR_PEER_UNEXPECTED');

    const [atAlpha2] = MemoryLink.pair(clock, 'alpha', 'beta');
    new Session(atAlpha2, sessionOpts(clock)).start(hello('alpha', 'active'));
    clock.advance(4999);
    expect(atAlpha2.open).toBe(true);
    clock.advance(1);
    expect(atAlpha2.closedWith).toMatchObject({ code: 'TANDEM_ERR_PROTOCOL', reason: 'the peer sent no hello within 5000 ms' });
    expect(clock.pendingTimers()).toBe(0);
  });

  it('drops, without closing, a late message for a part that let go while the connection stays', () => {
    const clock = new FakeClock();
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta');
    const got: Message[] = [];
    const listener = (m: Message) => got.push(m);
    let port: PeerLink | undefined;
    const a = new Session(atAlpha, sessionOpts(clock, { onPeerHello: () => (port = a.port('to-active').on('message', listener) as PeerLink) }));
    a.start(hello('alpha', 'active'));
    atBeta.send(hello('beta', 'passive'));
    atBeta.send({ t: 'ack', seq: 1 });
    clock.advance(0);
    // The sender stops (a role change) while the connection stays until the reconnect.
    port!.off('message', listener);
    atBeta.send({ t: 'ack', seq: 2 });
    clock.advance(0);
    expect(got).toHaveLength(1);
    expect(atAlpha.open).toBe(true);
    expect(a.stats().late).toBe(1);
  });
});

describe('dispatcher', () => {
  it('gives every message type but error a family, and a type one handler at a time', () => {
    const types = new Set(Object.values(MESSAGE_FAMILIES).flat());
    expect([...types].sort()).toEqual(['ack', 'batch', 'hb', 'hello', 'manifest-chunk', 'manifest-end', 'manifest-request', 'peer-state', 'split-brain', 'takeover', 'takeover-result', 'verify-entry', 'verify-list', 'verify-reply']);
    const d = new Dispatcher();
    d.register('to-active', () => {});
    // peer-state goes both ways: a node is active or passive on a connection, never both.
    expect(() => d.register('to-passive', () => {})).toThrow(/peer-state is taken by to-active/);
    expect(() => d.register('to-active', () => {})).toThrow(/already has a handler/);
  });
});

describe('heartbeat over a session', () => {
  it('goes down exactly interval × threshold after the peer falls silent, by the clock alone', () => {
    const clock = new FakeClock();
    const [atAlpha, atBeta] = MemoryLink.pair(clock, 'alpha', 'beta', { delayMs: 5 });
    const own = (role: 'active' | 'passive') => () => ({ role, epoch: 1, serving: role === 'active', publicState: 'ok' as const, inSync: true });
    const alpha = new ChannelHeartbeat({ intervalMs: 1000, threshold: 3, clock, own: own('active') });
    const beta = new ChannelHeartbeat({ intervalMs: 1000, threshold: 3, clock, own: own('passive') });
    const view = (role: 'active' | 'passive') => ({ role, epoch: 1, serving: role === 'active', publicState: 'ok' as const, inSync: true, at: clock.now() });
    const sa: Session = new Session(atAlpha, sessionOpts(clock, { onPeerHello: () => alpha.attach(sa.port('heartbeat'), view('passive')) }));
    const sb: Session = new Session(atBeta, sessionOpts(clock, { onPeerHello: () => beta.attach(sb.port('heartbeat'), view('active')) }));
    sa.start(hello('alpha', 'active'));
    sb.start(hello('beta', 'passive'));
    clock.advance(10_000);
    expect(alpha.observe()).toMatchObject({ up: true, peer: { role: 'passive' } });
    expect(alpha.observe().rttMs).toBeCloseTo(10, 6);
    // beta's agent hangs: the connection stays open, nothing more comes from it.
    beta.stop();
    const lastHeard = alpha.observe().lastHeardAt!;
    clock.advance(lastHeard + 3000 - clock.now());
    expect(alpha.observe().up).toBe(true);
    clock.advance(1);
    expect(alpha.observe()).toMatchObject({ up: false, since: lastHeard, peer: undefined });
    expect(atAlpha.open).toBe(true);
    alpha.stop();
  });
});
