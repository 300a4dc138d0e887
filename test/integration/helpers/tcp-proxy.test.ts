import crypto from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpProxy } from '../../helpers/tcp-proxy.ts';

// Real sockets on the loopback. "Nothing happens" can only be shown by waiting, so those tests
// wait QUIET_MS and check that not a byte, FIN or reset arrived.
const QUIET_MS = 300;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** One end of a connection with everything that happened to it. */
class End {
  readonly chunks: Buffer[] = [];
  ended = false;
  closed = false;
  error: NodeJS.ErrnoException | undefined;
  connected = false;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => this.chunks.push(c));
    sock.on('end', () => (this.ended = true));
    sock.on('close', () => (this.closed = true));
    sock.on('error', (e) => (this.error = e));
    sock.on('connect', () => (this.connected = true));
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
  get text(): string {
    return this.data.toString();
  }
  /** Nothing reached this end and it is still open. */
  get untouched(): boolean {
    return this.chunks.length === 0 && !this.ended && !this.closed && this.error === undefined;
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A target server; with `echo` it sends back what it gets and closes its side after a FIN. */
async function startTarget(echo = true): Promise<{ port: number; ends: End[] }> {
  const ends: End[] = [];
  const server = net.createServer((sock) => {
    const end = new End(sock);
    ends.push(end);
    if (echo) sock.on('data', (c: Buffer) => sock.write(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    for (const e of ends) e.sock.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, ends };
}

async function startProxy(targetPort: number): Promise<TcpProxy> {
  const proxy = await TcpProxy.start({ targetPort });
  cleanups.push(() => proxy.close());
  return proxy;
}

function dial(port: number): End {
  const end = new End(net.connect({ host: '127.0.0.1', port }));
  cleanups.push(() => void end.sock.destroy());
  return end;
}

async function connected(port: number): Promise<End> {
  const end = dial(port);
  await waitFor('connect', () => end.connected || end.error !== undefined);
  if (end.error) throw end.error;
  return end;
}

async function roundTrip(end: End, text: string): Promise<void> {
  const before = end.text.length;
  end.sock.write(text);
  await waitFor(`echo of ${text}`, () => end.text.length >= before + text.length);
  expect(end.text.slice(before)).toBe(text);
}

describe('TcpProxy', () => {
  it('relays bytes both ways, with backpressure and half-close, and counts them', async () => {
    const target = await startTarget();
    const proxy = await startProxy(target.port);
    const client = await connected(proxy.port);
    await roundTrip(client, 'hello');
    expect(proxy.stats()).toMatchObject({ mode: 'pass', bytesToTarget: 5, bytesToClient: 5, connectionsAccepted: 1, connectionsOpen: 1 });

    const big = crypto.randomBytes(4 << 20);
    client.sock.end(big);
    await waitFor('4 MiB echoed and the FIN back', () => client.ended, 20_000);
    expect(client.data.subarray(5).equals(big)).toBe(true);
    await waitFor('both sockets closed', () => proxy.stats().connectionsOpen === 0);
    expect(proxy.stats()).toMatchObject({ bytesToTarget: 5 + big.length, bytesToClient: 5 + big.length, bytesDropped: 0, connectionsCut: 0 });
  });

  it('blackhole: open connections stay open but no byte flows either way', async () => {
    const target = await startTarget(false);
    const proxy = await startProxy(target.port);
    const client = await connected(proxy.port);
    client.sock.write('before');
    await waitFor('first bytes at the target', () => target.ends[0]?.text === 'before');
    const server = target.ends[0]!;

    await proxy.blackhole();
    client.sock.write('lost up');
    server.sock.write('lost down');
    await sleep(QUIET_MS);
    expect(server.text).toBe('before');
    expect(server.ended || server.closed).toBe(false);
    expect(client.untouched).toBe(true);
    expect(proxy.stats()).toMatchObject({ mode: 'blackhole', connectionsOpen: 1, connectionsHeld: 1, bytesToTarget: 6, bytesToClient: 0 });
  });

  it('blackhole: new connects are accepted or hang, never refused, and reach nothing', async () => {
    const target = await startTarget();
    const proxy = await startProxy(target.port);
    await proxy.blackhole();
    const client = dial(proxy.port);
    await sleep(QUIET_MS);
    expect(client.error?.code).toBeUndefined();
    client.sock.write('anyone?');
    await sleep(QUIET_MS);
    expect(client.untouched).toBe(true);
    expect(target.ends).toHaveLength(0);
    expect(proxy.stats()).toMatchObject({ connectionsAccepted: 1, connectionsHeld: 1, bytesToTarget: 0 });
  });

  it('strand: the open connections go silent for good, even across a blackhole and back; new ones relay', async () => {
    const target = await startTarget();
    const proxy = await startProxy(target.port);
    const old = await connected(proxy.port);
    await roundTrip(old, 'before');
    proxy.strand();
    const fresh = await connected(proxy.port);
    await roundTrip(fresh, 'new connection');
    old.sock.write('lost');
    await sleep(QUIET_MS);
    // A blackhole's end destroys the connections it held: a stranded one stays as it was.
    await proxy.blackhole();
    await proxy.pass();
    old.sock.write('still lost');
    await sleep(QUIET_MS);
    expect(old.text).toBe('before');
    expect(old.ended || old.closed || old.error !== undefined).toBe(false);
    expect(target.ends[0]!.text).toBe('before');
    expect(target.ends[0]!.ended || target.ends[0]!.closed).toBe(false);
    const after = await connected(proxy.port);
    await roundTrip(after, 'and after');
    expect(proxy.stats()).toMatchObject({ mode: 'pass', connectionsHeld: 1 });
  });

  it('refuse: open connections are reset and new connects fail with ECONNREFUSED', async () => {
    const target = await startTarget();
    const proxy = await startProxy(target.port);
    const client = await connected(proxy.port);
    await roundTrip(client, 'ping');
    await proxy.refuse();
    await waitFor('both ends of the open connection closed', () => client.closed && target.ends[0]!.closed);
    expect(client.error?.code).toBe('ECONNRESET');

    const late = dial(proxy.port);
    await waitFor('the connect to fail', () => late.closed);
    expect(late.error?.code).toBe('ECONNREFUSED');
    expect(proxy.stats()).toMatchObject({ mode: 'refuse', connectionsOpen: 0, connectionsCut: 1 });
  });

  it('pass after refuse listens again on the same port', async () => {
    const target = await startTarget();
    const proxy = await startProxy(target.port);
    const port = proxy.port;
    await proxy.refuse();
    await proxy.pass();
    expect(proxy.port).toBe(port);
    await roundTrip(await connected(port), 'back');
  });

  it('pass after blackhole destroys every connection of the blackhole, delivers nothing from it, and relays new ones', async () => {
    const target = await startTarget();
    const proxy = await startProxy(target.port);
    const old = await connected(proxy.port);
    await roundTrip(old, 'one');
    await proxy.blackhole();
    old.sock.write('during');
    const held = await connected(proxy.port);
    held.sock.write('held');
    await sleep(50);

    await proxy.pass();
    await waitFor('old, held and the target side closed', () => old.closed && held.closed && target.ends[0]!.closed);
    expect(old.error?.code).toBe('ECONNRESET');
    expect(held.error?.code).toBe('ECONNRESET');
    expect(old.text).toBe('one');
    expect(target.ends.map((e) => e.text)).toEqual(['one']);

    await roundTrip(await connected(proxy.port), 'fresh');
    expect(proxy.stats()).toMatchObject({ mode: 'pass', connectionsAccepted: 3, connectionsOpen: 1, connectionsHeld: 0, connectionsCut: 2 });
  });

  it('delay adds latency each way, and jitter keeps the byte order', async () => {
    const target = await startTarget();
    const proxy = await startProxy(target.port);
    const client = await connected(proxy.port);
    await roundTrip(client, 'warm');

    await proxy.delay(100);
    expect(proxy.mode).toBe('delay');
    const t0 = performance.now();
    await roundTrip(client, 'slow');
    const rtt = performance.now() - t0;
    expect(rtt).toBeGreaterThanOrEqual(190);
    expect(rtt).toBeLessThan(2_000);

    await proxy.delay(5, 40);
    const sent: string[] = [];
    for (let i = 0; i < 100; i++) {
      sent.push(`<${i}>`);
      client.sock.write(`<${i}>`);
      await new Promise((r) => setImmediate(r));
    }
    const expected = `warmslow${sent.join('')}`;
    await waitFor('all 100 chunks echoed', () => client.text.length >= expected.length);
    expect(client.text).toBe(expected);

    // pass() clears the latency: a round trip that would take 600 ms comes back well before.
    await proxy.delay(300);
    await proxy.pass();
    const t1 = performance.now();
    await roundTrip(client, 'fast');
    expect(performance.now() - t1).toBeLessThan(300);
  });

  it('throttle carries at most so many bytes a second each way, in order, and pass() lifts it', async () => {
    const target = await startTarget(false);
    const proxy = await startProxy(target.port);
    const client = await connected(proxy.port);
    await proxy.throttle(1 << 20);
    expect(proxy.mode).toBe('delay');
    const data = crypto.randomBytes(768 << 10);
    const t0 = performance.now();
    client.sock.write(data);
    await waitFor('768 KiB at the target', () => (target.ends[0]?.data.length ?? 0) >= data.length, 20_000);
    // 768 KiB at 1 MiB/s: 750 ms at least (a lower bound: a busy machine only makes it slower).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(700);
    expect(target.ends[0]!.data.equals(data)).toBe(true);
    await proxy.pass();
    const t1 = performance.now();
    client.sock.write(data);
    await waitFor('768 KiB more', () => target.ends[0]!.data.length >= 2 * data.length, 20_000);
    expect(performance.now() - t1).toBeLessThan(700);
  });

  it('drop(1) loses whole chunks without closing anything, and pass() stops dropping', async () => {
    const target = await startTarget(false);
    const proxy = await startProxy(target.port);
    const client = await connected(proxy.port);
    await proxy.drop(1);
    client.sock.write('gone');
    await sleep(QUIET_MS);
    expect(target.ends[0]?.text ?? '').toBe('');
    expect(proxy.stats().bytesDropped).toBe(4);
    await proxy.pass();
    client.sock.write('kept');
    await waitFor('bytes after pass()', () => target.ends[0]?.text === 'kept');
  });

  it('resets the client when the target refuses the connection', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const proxy = await startProxy(deadPort);
    const client = dial(proxy.port);
    await waitFor('the client closed', () => client.closed);
    expect(client.connected).toBe(true);
    expect(proxy.stats()).toMatchObject({ targetConnectFailures: 1, connectionsOpen: 0 });
  });

  it('close() destroys every connection, held ones too, and frees the port', async () => {
    const target = await startTarget();
    const proxy = await TcpProxy.start({ targetPort: target.port });
    const relayed = await connected(proxy.port);
    await roundTrip(relayed, 'x');
    await proxy.blackhole();
    const held = await connected(proxy.port);
    await proxy.close();
    expect(proxy.stats().connectionsOpen).toBe(0);
    await waitFor('clients closed', () => relayed.closed && held.closed);
    const late = dial(proxy.port);
    await waitFor('the connect to fail', () => late.closed);
    expect(late.error?.code).toBe('ECONNREFUSED');
    expect(() => proxy.pass()).toThrow(/closed/);
  });
});
