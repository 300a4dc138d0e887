// What a connection does with bad frames, oversized frames and closes, over real sockets: the
// connection at fault is closed with a logged code, the process and the listener carry on.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { ChannelEncryption } from '../../../agent/channel/index.ts';
import { decode, encode } from '../../../shared/protocol/codec.ts';
import { captureLog, waitFor } from './log-capture.ts';
import { MAX_FRAME_BYTES, clientTarget, closedWith, dialOnce, hello, rawClient, serverOptions, startServer, type Recorded } from './fixtures.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(encryption: ChannelEncryption) {
  const slog = captureLog();
  const s = await startServer(serverOptions(slog.log, encryption));
  cleanups.push(() => s.server.close());
  return { ...s, slog };
}

async function openRaw(port: number, encryption: ChannelEncryption): Promise<{ ws: WebSocket; received: unknown[] }> {
  const r = await rawClient({ port, encryption });
  if (r.ws === undefined) throw new Error(`raw client refused: ${r.status ?? r.error?.message}`);
  const ws = r.ws;
  const received: unknown[] = [];
  ws.on('message', (data) => received.push(decode(data as Buffer)));
  cleanups.push(() => ws.terminate());
  return { ws, received };
}

/** The server still accepts a good client and talks to it. */
async function serverStillWorks(port: number, encryption: ChannelEncryption, accepted: Recorded[]): Promise<void> {
  const clog = captureLog();
  const before = accepted.length;
  const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
  expect(dialed.ok).toBe(true);
  if (!dialed.ok) return;
  cleanups.push(() => dialed.rec.conn.close('normal', 'test done'));
  dialed.rec.conn.send({ t: 'ack', seq: 42 });
  const server = await waitFor(() => accepted[before]);
  await waitFor(() => (server.messages.length > 0 ? true : undefined));
  expect(server.messages[0]).toEqual({ t: 'ack', seq: 42 });
}

function deeplyNested(depth: number): Buffer {
  const b = Buffer.alloc(depth + 1, 0x91); // fixarray of one element, nested `depth` times
  b[depth] = 0xc0; // nil at the bottom
  return b;
}

const badFrames: { name: string; frame: () => Buffer | string; reason: RegExp }[] = [
  { name: 'random bytes', frame: () => Buffer.from('c1ffee00deadbeef0102', 'hex'), reason: /does not decode/ },
  { name: 'valid msgpack with a wrong shape', frame: () => encode({ t: 'batch', first: 'one', last: 2, frames: new Uint8Array(1) }), reason: /wrong shape: batch: bad first\/last/ },
  { name: 'a message of an unknown type', frame: () => encode({ t: 'launch-missiles' }), reason: /unknown message type/ },
  { name: 'a text frame', frame: () => JSON.stringify({ t: 'ack', seq: 1 }), reason: /text frame/ },
  { name: 'deeply nested msgpack', frame: () => deeplyNested(200_000), reason: /Maximum call stack size exceeded/ },
];

describe.each(['tls-psk', 'none'] as ChannelEncryption[])('a peer connection with encryption %s', (encryption) => {
  it.each(badFrames)('closes the connection on $name, logs TANDEM_ERR_FRAME_MALFORMED and keeps serving', async ({ frame, reason }) => {
    const { port, accepted, slog } = await serve(encryption);
    const { ws, received } = await openRaw(port, encryption);
    const server = await waitFor(() => accepted[0]);
    const closed = closedWith(ws);
    ws.send(frame());
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_FRAME_MALFORMED');
    expect(line.level).toBe('warn');
    expect(line.err?.message).toMatch(reason);
    expect(line.peer).toBe('beta');
    // The peer is told why before the close frame.
    expect(await closed).toEqual({ code: 4000, reason: 'TANDEM_ERR_FRAME_MALFORMED' });
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ t: 'error', code: 'TANDEM_ERR_FRAME_MALFORMED' });
    expect(server.messages).toHaveLength(0);
    expect(server.closes).toEqual([{ code: 'TANDEM_ERR_FRAME_MALFORMED', reason: expect.stringMatching(reason), byPeer: false }]);
    expect(server.conn.open).toBe(false);
    await serverStillWorks(port, encryption, accepted);
  });

  it('closes the connection with 1009 on a frame over maxFrameBytes and logs TANDEM_ERR_FRAME_TOO_LARGE', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const { ws } = await openRaw(port, encryption);
    const server = await waitFor(() => accepted[0]);
    const closed = closedWith(ws);
    ws.send(Buffer.alloc(MAX_FRAME_BYTES + 1));
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_FRAME_TOO_LARGE');
    expect(line.level).toBe('warn');
    expect((await closed).code).toBe(1009);
    expect(server.closes).toEqual([{ code: 'TANDEM_ERR_FRAME_TOO_LARGE', reason: expect.any(String), byPeer: false }]);
    await serverStillWorks(port, encryption, accepted);
  });

  it('refuses to send a frame over maxFrameBytes and keeps the connection open', async () => {
    const { port, accepted } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    if (!dialed.ok) throw new Error(dialed.failure.reason);
    cleanups.push(() => dialed.rec.conn.close('normal', 'test done'));
    const big = { t: 'batch' as const, first: 1, last: 1, frames: new Uint8Array(MAX_FRAME_BYTES) };
    expect(() => dialed.rec.conn.send(big)).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_FRAME_TOO_LARGE' }));
    expect(dialed.rec.conn.open).toBe(true);
    dialed.rec.conn.send({ t: 'ack', seq: 1 });
    const server = await waitFor(() => accepted[0]);
    await waitFor(() => (server.messages.length === 1 ? true : undefined));
  });

  it('carries a batch of binary frames intact and reports the bytes still buffered', async () => {
    const { port, accepted } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    if (!dialed.ok) throw new Error(dialed.failure.reason);
    cleanups.push(() => dialed.rec.conn.close('normal', 'test done'));
    const server = await waitFor(() => accepted[0]);
    const frames = new Uint8Array(200_000).map((_, i) => i % 251);
    server.conn.send({ t: 'batch', first: 5, last: 9, frames });
    expect(server.conn.bufferedAmount).toBeGreaterThanOrEqual(0);
    await waitFor(() => (dialed.rec.messages.length === 1 ? true : undefined));
    const m = dialed.rec.messages[0];
    expect(m?.t).toBe('batch');
    if (m?.t !== 'batch') return;
    expect(Buffer.from(m.frames).equals(Buffer.from(frames))).toBe(true);
    expect(server.conn.stats().bytesOut).toBeGreaterThan(200_000);
    expect(dialed.rec.conn.stats().bytesIn).toBeGreaterThan(200_000);
  });

  it("delivers the peer's error message, logs it, and reports the peer's code on close", async () => {
    const { port, accepted, slog } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    if (!dialed.ok) throw new Error(dialed.failure.reason);
    const server = await waitFor(() => accepted[0]);
    server.conn.close('TANDEM_ERR_PROTOCOL', 'a batch arrived before hello');
    expect(server.closes).toEqual([{ code: 'TANDEM_ERR_PROTOCOL', reason: 'a batch arrived before hello', byPeer: false }]);
    await waitFor(() => (dialed.rec.closes.length === 1 ? true : undefined));
    expect(dialed.rec.messages).toEqual([{ t: 'error', code: 'TANDEM_ERR_PROTOCOL', message: 'a batch arrived before hello' }]);
    expect(dialed.rec.closes).toEqual([{ code: 'TANDEM_ERR_PROTOCOL', reason: 'a batch arrived before hello', byPeer: true }]);
    const warned = clog.lines().filter((l) => l.level === 'warn');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ code: 'TANDEM_ERR_PROTOCOL', msg: 'channel: the peer reported an error' });
    expect(slog.lines().some((l) => l.msg === 'channel: closing the connection' && l.code === 'TANDEM_ERR_PROTOCOL')).toBe(true);
    await dialed.rec.conn.ended();
  });

  it('reports a normal close by the peer with its reason', async () => {
    const { port, accepted } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    if (!dialed.ok) throw new Error(dialed.failure.reason);
    const server = await waitFor(() => accepted[0]);
    dialed.rec.conn.close('normal', 'switching roles');
    await waitFor(() => (server.closes.length === 1 ? true : undefined));
    expect(server.closes).toEqual([{ code: 'normal', reason: 'switching roles', byPeer: true }]);
    expect(server.messages).toHaveLength(0);
  });

  it('reports a connection that drops without a close frame as lost', async () => {
    const { port, accepted } = await serve(encryption);
    const { ws } = await openRaw(port, encryption);
    const server = await waitFor(() => accepted[0]);
    ws.terminate();
    await waitFor(() => (server.closes.length === 1 ? true : undefined));
    expect(server.closes[0]).toMatchObject({ code: 'lost', byPeer: true });
  });

  it('calls back with an error for a send after close, without throwing', async () => {
    const { port } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    if (!dialed.ok) throw new Error(dialed.failure.reason);
    dialed.rec.conn.close('normal', 'done');
    expect(dialed.rec.conn.open).toBe(false);
    const err = await new Promise<Error | undefined>((resolve) => dialed.rec.conn.send({ t: 'ack', seq: 1 }, resolve));
    expect(err).toMatchObject({ message: expect.stringContaining('closed') });
    expect(() => dialed.rec.conn.send({ t: 'ack', seq: 2 })).not.toThrow();
    expect(dialed.rec.conn.stats().messagesOut).toBe(0);
  });

  it('closes the connection when a message handler throws, and the process carries on', async () => {
    const { port, accepted, slog } = await serve(encryption);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, encryption, port), clog.log);
    if (!dialed.ok) throw new Error(dialed.failure.reason);
    const server = await waitFor(() => accepted[0]);
    server.conn.on('message', () => {
      throw new Error('applier bug');
    });
    dialed.rec.conn.send(hello('beta', 'passive'));
    const line = await slog.waitFor((l) => l.code === 'TANDEM_ERR_INTERNAL');
    expect(line.level).toBe('error');
    await waitFor(() => (dialed.rec.closes.length === 1 ? true : undefined));
    expect(dialed.rec.closes[0]).toMatchObject({ code: 'TANDEM_ERR_INTERNAL', byPeer: true });
    await serverStillWorks(port, encryption, accepted);
  });
});

/** A TCP relay to `port` that keeps every byte the client sent, in order. */
async function recordingRelay(port: number): Promise<{ port: number; clientBytes: () => Buffer }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (b: Buffer) => {
      chunks.push(Buffer.from(b));
      upstream.write(b);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        relay.close(() => resolve());
      }),
  );
  return { port: (relay.address() as net.AddressInfo).port, clientBytes: () => Buffer.concat(chunks) };
}

/** The WebSocket frames in `bytes` (after the HTTP upgrade request): mask bit, masking key, payload as sent. */
function clientFrames(bytes: Buffer): { masked: boolean; key: Buffer; payload: Buffer }[] {
  let at = bytes.indexOf('\r\n\r\n') + 4;
  const out: { masked: boolean; key: Buffer; payload: Buffer }[] = [];
  while (at + 2 <= bytes.length) {
    const masked = (bytes[at + 1]! & 0x80) !== 0;
    let len = bytes[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at + 2));
      head = 10;
    }
    const key = masked ? bytes.subarray(at + head, at + head + 4) : Buffer.alloc(0);
    const start = at + head + key.length;
    if (start + len > bytes.length) break;
    out.push({ masked, key, payload: bytes.subarray(start, start + len) });
    at = start + len;
  }
  return out;
}

describe('the bytes on the wire (encryption none)', () => {
  it('the dialer masks every frame with a zero key, so its payload goes out as it was encoded', async () => {
    const { port, accepted } = await serve('none');
    const relay = await recordingRelay(port);
    const clog = captureLog();
    const dialed = await dialOnce(clientTarget(clog.log, 'none', relay.port), clog.log);
    if (!dialed.ok) throw new Error(dialed.failure.reason);
    cleanups.push(() => dialed.rec.conn.close('normal', 'test done'));
    const server = await waitFor(() => accepted[0]);
    const frames = Buffer.from('the frames of one batch, readable on the wire '.repeat(2000));
    dialed.rec.conn.send({ t: 'batch', first: 3, last: 4, frames });
    dialed.rec.conn.send({ t: 'ack', seq: 77 });
    await waitFor(() => (server.messages.length === 2 ? true : undefined));
    expect(server.messages[0]).toMatchObject({ t: 'batch', first: 3, last: 4 });
    expect(Buffer.from((server.messages[0] as { frames: Uint8Array }).frames).equals(frames)).toBe(true);
    expect(server.messages[1]).toEqual({ t: 'ack', seq: 77 });
    const sent = clientFrames(relay.clientBytes());
    // The batch's two fragments and the ack at least; RFC 6455 still wants the mask bit set.
    expect(sent.length).toBeGreaterThanOrEqual(3);
    for (const f of sent) {
      expect(f.masked).toBe(true);
      expect(f.key.equals(Buffer.alloc(4))).toBe(true);
    }
    expect(sent.some((f) => f.payload.equals(frames))).toBe(true);
  });

  it('decodes a message in fragments that are not a batch head and its frames: joined, as before', async () => {
    const { port, accepted } = await serve('none');
    const { ws } = await openRaw(port, 'none');
    const server = await waitFor(() => accepted[0]);
    // An ack in two fragments, and a batch in three: neither is the two-part form sendBatch writes.
    const ack = encode({ t: 'ack', seq: 5 });
    ws.send(ack.subarray(0, 3), { binary: true, fin: false });
    ws.send(ack.subarray(3), { fin: true });
    const frames = Buffer.alloc(10_000, 0x5a);
    const batch = encode({ t: 'batch', first: 8, last: 9, frames });
    ws.send(batch.subarray(0, 100), { binary: true, fin: false });
    ws.send(batch.subarray(100, 5000), { fin: false });
    ws.send(batch.subarray(5000), { fin: true });
    await waitFor(() => (server.messages.length === 2 ? true : undefined));
    expect(server.messages[0]).toEqual({ t: 'ack', seq: 5 });
    expect(server.messages[1]).toMatchObject({ t: 'batch', first: 8, last: 9 });
    expect(Buffer.from((server.messages[1] as { frames: Uint8Array }).frames).equals(frames)).toBe(true);
    expect(server.conn.open).toBe(true);
  });
});
