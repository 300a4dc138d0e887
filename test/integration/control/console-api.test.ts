// The control API's console parts, with real servers on real sockets and stand-in components:
// the page served to anyone the Host check lets in, with a policy that loads nothing from
// elsewhere; login links that open one session once; one cookie name per API port (two nodes
// on one host keep both sessions); the peer's API relayed for the page with the pair's
// credential, for a fixed list of endpoints only, never relayed twice, and a peer that is down
// answered as such.
import crypto from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlAuth, ControlServer, PeerRelay, controlToken, type ActionAnswer, type AgentStatus, type DashboardAssets } from '../../../agent/control/index.ts';
import { systemClock } from '../../../shared/clock.ts';
import { statusDoc } from '../../unit/events/status-fixture.ts';
import { captureLog } from '../channel/log-capture.ts';
import { freeLoopbackPort } from '../../helpers/demo-dir.ts';

const KEY = crypto.randomBytes(32);
const TOKEN = controlToken(KEY);
const ASSETS: DashboardAssets = { html: '<!doctype html><title>Tandem console</title>', js: 'console.log(1)'.repeat(200), css: 'body{}', favicon: '<svg/>' };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});


interface Node {
  port: number;
  server: ControlServer;
  auth: ControlAuth;
  state: { maintenance: boolean };
}

async function node(o: { name: string; peer: string; host?: string; port?: number; peerPort?: number; dashboard?: DashboardAssets | undefined }): Promise<Node> {
  const logs = captureLog('warn');
  const auth = new ControlAuth(KEY, '', systemClock);
  const state = { maintenance: false };
  const done = (message: string): Promise<ActionAnswer> => Promise.resolve({ ok: true, message });
  const status = (): AgentStatus => statusDoc({ node: o.name, peer: { name: o.peer, connected: true, role: 'passive' }, maintenance: state.maintenance });
  const server = new ControlServer({
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 0,
    status,
    auth,
    switchover: () => done('the peer is active now'),
    resolve: () => Promise.resolve({ ok: false, message: 'no split brain' }),
    maintenance: (on) => {
      state.maintenance = on;
      return done(on ? 'maintenance on' : 'maintenance off');
    },
    rotateToken: (salt) => {
      auth.rotate(salt);
      return done('control token rotated');
    },
    dashboard: 'dashboard' in o ? o.dashboard : ASSETS,
    history: { answer: (n: string) => ({ node: n, rows: [] }) },
    peer: o.peerPort === undefined ? undefined : new PeerRelay({ self: o.name, peer: o.peer, host: '127.0.0.1', port: o.peerPort, key: KEY, salt: () => auth.salt, clock: systemClock, log: logs.log }),
    clock: systemClock,
    log: logs.log,
  });
  const port = await server.listen();
  cleanups.push(() => server.close());
  return { port, server, auth, state };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
  body: any;
}

function request(port: number, o: { method?: string; path: string; headers?: Record<string, string> }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers: { host: `127.0.0.1:${port}`, ...o.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let body: any = raw.toString();
        try {
          body = JSON.parse(body);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, raw, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const cookieOf = (a: Answer) => String(a.headers['set-cookie'] ?? '').split(';')[0]!;

describe('control API: the console page', () => {
  it('serves the page without a credential, under a policy that loads nothing from elsewhere and forbids framing', async () => {
    const a = await node({ name: 'alpha', peer: 'beta', host: '0.0.0.0' });
    const root = await request(a.port, { path: '/' });
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe('/console/');
    const page = await request(a.port, { path: '/console/' });
    expect(page.status).toBe(200);
    expect(page.body).toBe(ASSETS.html);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    // The script, compressed when asked, and not sent again while unchanged.
    const js = await request(a.port, { path: '/console/app.js', headers: { 'accept-encoding': 'gzip, br' } });
    expect(js.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(js.raw).toString()).toBe(ASSETS.js);
    expect(js.raw.length).toBeLessThan(ASSETS.js.length / 10);
    expect((await request(a.port, { path: '/console/app.js', headers: { 'if-none-match': String(js.headers.etag) } })).status).toBe(304);
    // Everything else still needs the token beyond the loopback, and a wrong Host is refused.
    expect((await request(a.port, { path: '/v1/status' })).status).toBe(401);
    expect((await request(a.port, { path: '/console/', headers: { host: `rebind.attacker.example:${a.port}` } })).status).toBe(421);
    expect((await request(a.port, { path: '/console/nothing' })).status).toBe(401);
  });

  it('says so when the agent runs without a built page', async () => {
    const a = await node({ name: 'alpha', peer: 'beta', dashboard: undefined });
    const page = await request(a.port, { path: '/console/' });
    expect(page.status).toBe(503);
    expect(page.body).toContain('npm run build');
  });
});

describe('control API: console login links', () => {
  it('opens one session per ticket, once; a spent, made-up or rotated ticket opens nothing', async () => {
    const a = await node({ name: 'alpha', peer: 'beta', host: '0.0.0.0' });
    const minted = await request(a.port, { method: 'POST', path: '/v1/session/ticket', headers: { 'x-tandem-token': TOKEN } });
    expect(minted.status).toBe(200);
    expect(minted.body.path).toMatch(/^\/console\/login\?ticket=[0-9a-f]{64}$/);
    expect(minted.body.expiresInMs).toBe(600_000);
    // A HEAD (a link preview) does not spend it.
    const head = await request(a.port, { method: 'HEAD', path: minted.body.path });
    expect(head.status).toBe(303);
    expect(head.headers['set-cookie']).toBeUndefined();
    const login = await request(a.port, { path: minted.body.path });
    expect(login.status).toBe(303);
    expect(login.headers.location).toBe('/console/');
    expect(String(login.headers['set-cookie'])).toMatch(new RegExp(`^tandem_session_${a.port}=[0-9a-f]{64}; HttpOnly; SameSite=Strict; Path=/`));
    const session = cookieOf(login);
    expect((await request(a.port, { path: '/v1/status', headers: { cookie: session } })).status).toBe(200);
    expect((await request(a.port, { path: '/v1/session', headers: { cookie: session } })).body).toMatchObject({ loggedIn: true, node: 'alpha' });
    expect((await request(a.port, { path: '/v1/session' })).body).toMatchObject({ loggedIn: false });
    // The same link again: no new session, back to the login form.
    const again = await request(a.port, { path: minted.body.path });
    expect(again.headers.location).toBe('/console/?login=refused');
    expect(again.headers['set-cookie']).toBeUndefined();
    const madeUp = await request(a.port, { path: `/console/login?ticket=${'a'.repeat(64)}` });
    expect(madeUp.headers.location).toBe('/console/?login=refused');
    expect(madeUp.headers['set-cookie']).toBeUndefined();
    // A browser that is logged in lands on the dashboard whatever its link.
    expect((await request(a.port, { path: minted.body.path, headers: { cookie: session } })).headers.location).toBe('/console/');
    // A session cannot mint tickets (only the token itself can), with or without this API's Origin.
    expect((await request(a.port, { method: 'POST', path: '/v1/session/ticket', headers: { cookie: session, origin: `http://127.0.0.1:${a.port}` } })).status).toBe(403);
    expect((await request(a.port, { method: 'POST', path: '/v1/session/ticket' })).status).toBe(403);
    // A rotation voids the tickets not yet used.
    const unused = await request(a.port, { method: 'POST', path: '/v1/session/ticket', headers: { 'x-tandem-token': TOKEN } });
    const salt = crypto.randomBytes(32).toString('hex');
    expect((await request(a.port, { method: 'POST', path: `/v1/token?salt=${salt}`, headers: { 'x-tandem-token': TOKEN } })).status).toBe(200);
    expect((await request(a.port, { path: unused.body.path })).headers.location).toBe('/console/?login=refused');
    expect(a.server.guard.refusals.get('token')).toBeGreaterThanOrEqual(3);
  });

  it('names the session cookie after the port, so two nodes on one host keep a session each in one browser', async () => {
    const a = await node({ name: 'alpha', peer: 'beta' });
    const b = await node({ name: 'beta', peer: 'alpha' });
    const login = async (n: Node) => cookieOf(await request(n.port, { path: (await request(n.port, { method: 'POST', path: '/v1/session/ticket', headers: { 'x-tandem-token': TOKEN } })).body.path }));
    const ca = await login(a);
    const cb = await login(b);
    expect(ca.split('=')[0]).not.toBe(cb.split('=')[0]);
    // A browser sends both cookies to both (cookies ignore ports): each API takes its own.
    const both = `${ca}; ${cb}`;
    for (const n of [a, b]) {
      const w = await request(n.port, { method: 'POST', path: '/v1/maintenance?on=1', headers: { cookie: both, origin: `http://127.0.0.1:${n.port}` } });
      expect(w.status).toBe(200);
    }
    expect(a.state.maintenance && b.state.maintenance).toBe(true);
  });
});

describe('control API: the peer through this node', () => {
  it('relays the listed reads and writes to the peer with the pair\'s credential, and nothing else', async () => {
    const b = await node({ name: 'beta', peer: 'alpha' });
    const a = await node({ name: 'alpha', peer: 'beta', peerPort: b.port });
    const tok = { 'x-tandem-token': TOKEN };
    // The page learns the peer's console address once logged in, not before.
    expect((await request(a.port, { path: '/v1/session' })).body).toEqual({ loggedIn: false, node: 'alpha' });
    expect((await request(a.port, { path: '/v1/session', headers: tok })).body).toEqual({ loggedIn: true, node: 'alpha', peer: { name: 'beta', console: `http://127.0.0.1:${b.port}/console/` } });
    const peerStatus = await request(a.port, { path: '/v1/peer/status', headers: tok });
    expect(peerStatus.status).toBe(200);
    expect(peerStatus.body.node).toBe('beta');
    expect((await request(a.port, { path: '/v1/peer/history', headers: tok })).body).toEqual({ node: 'beta', rows: [] });
    // The relay acts with the pair key: never for a caller without a credential, even on the loopback.
    expect((await request(a.port, { path: '/v1/peer/status' })).status).toBe(401);
    // A browser's write through the relay needs this API's Origin, like any write with a session.
    const session = cookieOf(await request(a.port, { method: 'POST', path: '/v1/session', headers: tok }));
    expect((await request(a.port, { method: 'POST', path: '/v1/peer/maintenance?on=1', headers: { cookie: session } })).status).toBe(403);
    expect(b.state.maintenance).toBe(false);
    const w = await request(a.port, { method: 'POST', path: '/v1/peer/maintenance?on=1', headers: { cookie: session, origin: `http://127.0.0.1:${a.port}` } });
    expect(w.status).toBe(200);
    expect(w.body.message).toBe('maintenance on');
    expect(b.state.maintenance).toBe(true);
    // Not on the list: sessions, tokens, metrics, forced failovers.
    for (const [method, path] of [['POST', '/v1/peer/token?salt=' + 'ab'.repeat(16)], ['POST', '/v1/peer/session'], ['POST', '/v1/peer/failover?force=1'], ['GET', '/v1/peer/metrics'], ['GET', '/v1/peer/status%2F..%2Fmetrics']] as const) {
      const r = await request(a.port, { method, path, headers: tok });
      expect(r.status, path).toBe(404);
    }
    // A relayed request is not relayed again.
    expect((await request(a.port, { path: '/v1/peer/status', headers: { ...tok, 'x-tandem-relayed': '1' } })).status).toBe(400);
  });

  it('still reaches a peer whose token was rotated alone (its refusal names its salt)', async () => {
    const b = await node({ name: 'beta', peer: 'alpha' });
    const a = await node({ name: 'alpha', peer: 'beta', peerPort: b.port });
    b.auth.rotate(crypto.randomBytes(32).toString('hex'));
    const r = await request(a.port, { path: '/v1/peer/status', headers: { 'x-tandem-token': TOKEN } });
    expect(r.status).toBe(200);
    expect(r.body.node).toBe('beta');
  });

  it('answers 502 with why when the peer is down, or when the peer\'s address reaches this very node', async () => {
    const gone = await freeLoopbackPort();
    const a = await node({ name: 'alpha', peer: 'beta', peerPort: gone });
    const r = await request(a.port, { path: '/v1/peer/status', headers: { 'x-tandem-token': TOKEN } });
    expect(r.status).toBe(502);
    expect(r.body).toMatchObject({ ok: false, code: 'TANDEM_ERR_CONTROL_UNREACHABLE', peer: 'beta' });
    expect(r.body.message).toMatch(/ECONNREFUSED/);
    const port = await freeLoopbackPort();
    const self = await node({ name: 'alpha', peer: 'beta', port, peerPort: port });
    const loop = await request(self.port, { path: '/v1/peer/status', headers: { 'x-tandem-token': TOKEN } });
    expect(loop.status).toBe(400);
    expect(loop.body.message).toContain('a request relayed by alpha reached alpha');
    // An address that reaches another agent than the peer: said so, its document not shown as the peer's.
    const gamma = await node({ name: 'gamma', peer: 'delta' });
    const wrong = await node({ name: 'alpha', peer: 'beta', peerPort: gamma.port });
    const other = await request(wrong.port, { path: '/v1/peer/status', headers: { 'x-tandem-token': TOKEN } });
    expect(other.status).toBe(502);
    expect(other.body.message).toContain('answers as gamma, not beta');
    // A write to such a peer goes nowhere: the relayed request comes back and this node refuses it.
    expect((await request(self.port, { method: 'POST', path: '/v1/peer/maintenance?on=1', headers: { 'x-tandem-token': TOKEN } })).status).toBe(400);
    expect(self.state.maintenance).toBe(false);
  });
});
