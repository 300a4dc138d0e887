// The agent's control API: HTTP on the control address (docs/control-api.md). Reads: GET
// /v1/status (the status document), /v1/events (the event stream), /metrics (Prometheus),
// /v1/switchover (what a switchover would do: --dry-run), /v1/verify; health for load
// balancers: /v1/health/active, /v1/health/passive, /healthz. Writes (POST): switchover,
// resolve, verify, failover, replication pause/resume, maintenance, token, session. The console:
// its page under /console/ (dashboard.ts), its login link /console/login?ticket=T, the last hour
// of figures (/v1/history), and the peer's API through this one (/v1/peer/…, peer-relay.ts).
//
// Every request is checked before anything else: its Host header must name this API (DNS
// rebinding), writes need a credential (agent/control/control-auth.ts), and so do reads when the
// API listens beyond the loopback; a write made with a browser's session cookie must come from
// a page of this API (Origin). Connections are capped and idle ones closed (request-guard.ts).
// Status answers never block on replication work: they are built from in-memory state.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../../shared/clock.ts';
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { EventHistory } from '../events/index.ts';
import { PROMETHEUS_CONTENT_TYPE } from '../events/index.ts';
import { ControlAuth, SESSION_IDLE_MS, TOKEN_SALT, sessionCookieName, type Credential } from './control-auth.ts';
import { DASHBOARD_PATH, DashboardFiles, LOGIN_PATH, PAGE_HEADERS, type DashboardAssets } from './dashboard.ts';
import { eventsAnswer, longPoll, parseEventsQuery, streamEvents } from './event-stream.ts';
import { RELAY_HEADER, type PeerRelay } from './peer-relay.ts';
import { RequestGuard, hostMatcher, isLoopbackHost } from './request-guard.ts';
import type { AgentStatus } from './status.ts';

/** What an operator's request came to: done, or refused/failed with a stable code. */
export interface ActionAnswer {
  ok: boolean;
  message: string;
  code?: string | undefined;
  [k: string]: unknown;
}

export interface ControlServerOptions {
  host: string;
  port: number;
  /** control.allowHosts: more names the Host header may carry. */
  allowHosts?: readonly string[] | undefined;
  /** The status document (through the state tracker, so that every change it shows is an event). */
  status: () => AgentStatus;
  auth: ControlAuth;
  events?: EventHistory | undefined;
  metrics?: (() => string) | undefined;
  /** POST /v1/switchover (force: skip the in-sync check) and GET /v1/switchover (what it would do). */
  switchover: (opts: { force: boolean }) => Promise<ActionAnswer>;
  switchoverPlan?: ((opts: { force: boolean }) => unknown) | undefined;
  /** tandem resolve --keep NODE: ends a split brain (on the active node). */
  resolve: (keep: string) => Promise<{ ok: boolean; message: string; code?: string | undefined }>;
  /** `tandem verify`: start or join one (throws a TandemError when refused), and report it. */
  verify?: { start(repair: boolean): unknown; report(): unknown } | undefined;
  /** tandem failover --force, on the passive. */
  failover?: (() => Promise<ActionAnswer>) | undefined;
  /** tandem pause / resume (on the active). */
  pause?: ((paused: boolean, reason: string) => Promise<ActionAnswer>) | undefined;
  /** tandem maintenance on|off. */
  maintenance?: ((on: boolean, reason: string) => Promise<ActionAnswer>) | undefined;
  /** tandem token rotate: a new salt (the caller persists it before the auth uses it). */
  rotateToken?: ((salt: string) => Promise<ActionAnswer>) | undefined;
  /** The console's page (the build's; undefined when run from the sources: /console/ answers 503). */
  dashboard?: DashboardAssets | undefined;
  /** GET /v1/history: the last hour of figures (status-history.ts). */
  history?: { answer(node: string): unknown } | undefined;
  /** /v1/peer/…: the peer's API through this one, for the console (peer-relay.ts). */
  peer?: PeerRelay | undefined;
  clock: Clock;
  log: Logger;
}

const READ_HINT = 'reads beyond the loopback need the control token: tandem commands send it; others pass it as "Authorization: Bearer TOKEN" (tandem token show -c CONFIG)';

export class ControlServer {
  private server: http.Server | undefined;
  private readonly log: Logger;
  readonly guard: RequestGuard;
  private hostOk: (host: string | undefined) => boolean = () => false;
  private readonly readsNeedToken: boolean;
  private stopping = false;
  private readonly dashboard: DashboardFiles;

  constructor(private readonly opts: ControlServerOptions) {
    this.log = opts.log.child({ component: 'control' });
    this.guard = new RequestGuard(this.log, opts.clock);
    this.readsNeedToken = !isLoopbackHost(opts.host);
    this.dashboard = new DashboardFiles(opts.dashboard);
  }

  /** Bytes of the console's files as served (raw and gzip); empty when not built in. */
  dashboardSizes(): Record<string, { bytes: number; gzip: number }> {
    return this.dashboard.sizes();
  }

  async listen(): Promise<number> {
    const server = http.createServer(
      {
        // Short: a client that has not sent its request by then is not going to (slowloris).
        headersTimeout: 5000,
        requestTimeout: 10_000,
        keepAliveTimeout: 5000,
        connectionsCheckingInterval: 1000,
      },
      (req, res) => this.handle(req, res),
    );
    server.on('connection', (socket) => this.guard.admit(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    this.hostOk = hostMatcher(this.opts.host, port, this.opts.allowHosts ?? []);
    this.opts.auth.useCookieName(sessionCookieName(port));
    this.log.info({ host: this.opts.host, port, readsNeedToken: this.readsNeedToken }, 'control: listening');
    return port;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const remote = req.socket.remoteAddress;
    const send = (code: number, body: unknown, headers: Record<string, string> = {}) => {
      if (res.headersSent) return;
      const text = `${JSON.stringify(body, null, 2)}\n`;
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
      res.end(text);
    };
    const refusedAuth = (op: string, status = 403) => {
      this.guard.refuse('token', remote, { op });
      // The salt is no secret: with it a key holder derives the current token (control-auth.ts).
      send(status, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: `${op}: no valid control token`, hint: op.startsWith('GET') ? READ_HINT : 'use the tandem command on a host that holds the pair key', tokenSalt: this.opts.auth.salt });
    };
    if (!this.hostOk(req.headers.host)) {
      this.guard.refuse('host', remote, { host: String(req.headers.host).slice(0, 200) });
      req.resume();
      return send(421, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: `control: Host ${JSON.stringify(String(req.headers.host).slice(0, 200))} is not this API's address`, hint: 'address the API by the host:port in nodes.<node>.control, or list the name in control.allowHosts' });
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://control');
    } catch {
      return send(400, { code: 'TANDEM_ERR_USAGE', message: 'control: bad request target' });
    }
    const credential = this.opts.auth.check(req);
    const op = `${req.method} ${url.pathname}`;
    try {
      // Health: open to load balancers, whatever the address (they say only the role).
      if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname.startsWith('/v1/health/'))) return this.health(url.pathname, send);
      // How to make a token: no secret in it (a token still needs the pair key).
      if (req.method === 'GET' && url.pathname === '/v1/auth') return send(200, { scheme: 'hmac-sha256(pair key, "tandem control v1[:SALT]")', tokenSalt: this.opts.auth.salt, header: 'x-tandem-token', bearer: true, session: '/v1/session' });
      // A relayed request is never relayed again, and never acted on by the node that relayed it
      // (nodes.<peer>.control naming this very API would otherwise loop, or act on the wrong node).
      const relayedBy = req.headers[RELAY_HEADER];
      if (relayedBy !== undefined && (url.pathname.startsWith('/v1/peer/') || relayedBy === this.opts.status().node)) {
        req.resume();
        return send(400, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: `${op}: a request relayed by ${String(relayedBy).slice(0, 64)} reached ${this.opts.status().node}: it is not relayed again, nor acted on by the node that relayed it`, hint: "nodes.<peer>.control must name the peer's API, not this one" });
      }
      if (req.method === 'GET' || req.method === 'HEAD') {
        // The console's page holds no secret (what it shows comes from the API, behind the credentials).
        if (url.pathname === LOGIN_PATH) return this.login(req, res, url, credential);
        if (this.dashboard.serve(req, res, url.pathname)) return;
        // Whether this browser is logged in: the page asks before it shows the login form.
        if (url.pathname === '/v1/session') {
          // The peer's address only to a logged-in browser: beyond the loopback it is not for everyone.
          const peer = this.opts.peer === undefined || credential === undefined ? undefined : { name: this.opts.peer.peerName, console: `${this.opts.peer.url}${DASHBOARD_PATH}` };
          return send(200, { loggedIn: credential !== undefined, node: this.opts.status().node, ...(peer === undefined ? {} : { peer }) });
        }
        // The relay acts with the pair key: never for a caller without a credential, loopback or not.
        if (url.pathname.startsWith('/v1/peer/')) return credential === undefined ? refusedAuth(op, 401) : this.relay(req, url, 'GET', send);
        if (this.readsNeedToken && credential === undefined) return refusedAuth(op, 401);
        return this.read(req, res, url, send);
      }
      if (req.method !== 'POST' && req.method !== 'DELETE') {
        return send(405, { code: 'TANDEM_ERR_USAGE', message: `${op}: method not allowed` }, { allow: 'GET, POST, DELETE' });
      }
      req.resume();
      if (credential === undefined) return refusedAuth(op);
      if (credential === 'session' && !this.sameOrigin(req)) {
        this.guard.refuse('origin', remote, { origin: String(req.headers.origin ?? '').slice(0, 200) });
        return send(403, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: `${op}: a browser session may only act from a page of this API (Origin)`, hint: 'open the console from tandem console --print-url' });
      }
      return this.write(req, url, credential, send);
    } catch (err) {
      this.log.error({ err }, 'control: request failed');
      send(500, { code: 'TANDEM_ERR_INTERNAL', message: (err as Error).message });
    }
  }

  /** A write with a session cookie must name this API as its Origin (a fetch from its own page). */
  private sameOrigin(req: http.IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (typeof origin !== 'string') return false;
    try {
      const u = new URL(origin);
      return u.protocol === 'http:' && u.host.toLowerCase() === String(req.headers.host).toLowerCase() && this.hostOk(u.host);
    } catch {
      return false;
    }
  }

  /**
   * GET /console/login?ticket=T: the link of `tandem console`. A good ticket opens a session
   * and lands on the dashboard; a spent, old or made-up one lands on the login form, unless the
   * browser is logged in already.
   */
  private login(req: http.IncomingMessage, res: http.ServerResponse, url: URL, credential: Credential | undefined): void {
    const headers = { 'cache-control': 'no-store', ...PAGE_HEADERS };
    // Link previews and checkers ask with HEAD first: only a GET spends the ticket.
    if (req.method === 'HEAD') {
      res.writeHead(303, { location: DASHBOARD_PATH, ...headers });
      res.end();
      return;
    }
    if (this.opts.auth.redeemTicket(url.searchParams.get('ticket') ?? '')) {
      const sid = this.opts.auth.openSession();
      this.log.info({ remote: req.socket.remoteAddress }, 'control: browser session opened (console login link)');
      res.writeHead(303, { location: DASHBOARD_PATH, 'set-cookie': this.sessionCookie(sid), ...headers });
      res.end();
      return;
    }
    if (credential === undefined) this.guard.refuse('token', req.socket.remoteAddress, { op: `GET ${LOGIN_PATH}` });
    res.writeHead(303, { location: credential === undefined ? `${DASHBOARD_PATH}?login=refused` : DASHBOARD_PATH, ...headers });
    res.end();
  }

  private sessionCookie(sid: string): string {
    return sid === '' ? `${this.opts.auth.sessionCookie}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` : `${this.opts.auth.sessionCookie}=${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_IDLE_MS / 1000}`;
  }

  /** /v1/peer/X: the peer's answer to X, or 502 with why it gave none. */
  private relay(req: http.IncomingMessage, url: URL, method: 'GET' | 'POST', send: (code: number, body: unknown) => void): void {
    const relay = this.opts.peer;
    if (relay === undefined) return send(404, { code: 'TANDEM_ERR_USAGE', message: `${method} ${url.pathname}: this API relays nothing to a peer` });
    const release = this.guard.holdOpen(req);
    void relay.relay(method, url.pathname.slice('/v1/peer/'.length), url.searchParams).then(
      (a) => {
        release();
        send(a.status, a.body);
      },
      (err: unknown) => {
        release();
        const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: `${method} ${url.pathname}` });
        send(500, { ok: false, ...e.toJSON() });
      },
    );
  }

  private health(path: string, send: (code: number, body: unknown) => void): void {
    const s = this.opts.status();
    const handingOver = s.failover.phase === 'busy' && (s.failover.pending === 'switchover' || s.failover.pending === 'demote');
    const body = { node: s.node, role: s.role, state: s.state, serving: s.failover.serving, maintenance: s.maintenance };
    if (path === '/healthz') return send(200, { ok: true, ...body });
    // Patroni's /primary and /replica: the address a load balancer should send writes to, and
    // the one that may serve reads of a copy within failover.maxLagOnFailover.
    if (path === '/v1/health/active') return send(s.role === 'active' && s.failover.serving && !handingOver ? 200 : 503, body);
    if (path === '/v1/health/passive') return send(s.role === 'passive' && s.replication.caughtUp ? 200 : 503, body);
    send(404, { code: 'TANDEM_ERR_USAGE', message: `no such endpoint: GET ${path}`, hint: 'GET /v1/health/active or /v1/health/passive' });
  }

  private read(req: http.IncomingMessage, res: http.ServerResponse, url: URL, send: (code: number, body: unknown, headers?: Record<string, string>) => void): void {
    const p = url.pathname;
    if (p === '/v1/status') return send(200, this.opts.status());
    if (p === '/v1/history' && this.opts.history !== undefined) return send(200, this.opts.history.answer(this.opts.status().node));
    if (p === '/metrics' && this.opts.metrics !== undefined) {
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(this.opts.metrics());
      return;
    }
    if (p === '/v1/events' && this.opts.events !== undefined) return this.events(req, res, url, send);
    if (p === '/v1/switchover' && this.opts.switchoverPlan !== undefined) return send(200, this.opts.switchoverPlan({ force: url.searchParams.get('force') === '1' }));
    if (p === '/v1/verify' && this.opts.verify !== undefined) {
      try {
        return send(200, { verify: this.opts.verify.report() ?? null });
      } catch (err) {
        const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'verify' });
        return send(e.code === 'TANDEM_ERR_INTERNAL' ? 500 : 409, { ok: false, ...e.toJSON() });
      }
    }
    send(404, { code: 'TANDEM_ERR_USAGE', message: `no such endpoint: GET ${p}`, hint: 'GET /v1/status, /v1/events, /metrics, /v1/switchover, /v1/verify, /v1/history, /v1/peer/…, /v1/health/active, /v1/health/passive, /console/' });
  }

  private events(req: http.IncomingMessage, res: http.ServerResponse, url: URL, send: (code: number, body: unknown) => void): void {
    const history = this.opts.events!;
    const lastId = req.headers['last-event-id'];
    const q = parseEventsQuery(url, typeof lastId === 'string' ? lastId : undefined);
    if (typeof q === 'string') return send(400, { code: 'TANDEM_ERR_USAGE', message: `GET /v1/events: ${q}` });
    const node = this.opts.status().node;
    if (String(req.headers.accept ?? '').includes('text/event-stream')) {
      if (!this.guard.openStream()) {
        this.guard.refuse('streams', req.socket.remoteAddress);
        return send(503, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: 'GET /v1/events: too many event streams open', hint: 'close another, or poll with ?wait=30s' });
      }
      void streamEvents(req, res, history, q, this.guard, this.opts.clock, () => this.stopping).finally(() => this.guard.closeStream());
      return;
    }
    if (q.waitMs <= 0) return send(200, eventsAnswer(history, node, q));
    const release = this.guard.holdOpen(req);
    let closed = false;
    res.once('close', () => (closed = true));
    void longPoll(history, q, this.opts.clock, () => closed || this.stopping).then(() => {
      release();
      send(200, eventsAnswer(history, node, q));
    });
  }

  private write(req: http.IncomingMessage, url: URL, credential: Credential, send: (code: number, body: unknown, headers?: Record<string, string>) => void): void {
    const p = url.pathname;
    const q = url.searchParams;
    const reason = (q.get('reason') ?? '').slice(0, 200);
    const answer = (work: Promise<ActionAnswer>, onEnd: () => void = () => {}) =>
      void work.then(
        (r) => {
          onEnd();
          const { ok, message, code, ...rest } = r;
          send(ok ? 200 : 409, ok ? { ok: true, message, ...rest } : { ok: false, code: code ?? 'TANDEM_ERR_INTERNAL', message, ...rest });
        },
        (err: unknown) => {
          onEnd();
          const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: `${req.method} ${p}` });
          send(e.code === 'TANDEM_ERR_INTERNAL' ? 500 : 409, { ok: false, ...e.toJSON() });
        },
      );
    if (req.method === 'POST' && p === '/v1/session') {
      if (credential !== 'token') return send(403, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: 'POST /v1/session: log in with the control token itself' });
      const sid = this.opts.auth.openSession();
      this.log.info({ remote: req.socket.remoteAddress }, 'control: browser session opened');
      return send(200, { ok: true, expiresAfterIdleMs: SESSION_IDLE_MS }, { 'set-cookie': this.sessionCookie(sid) });
    }
    if (req.method === 'DELETE' && p === '/v1/session') {
      this.opts.auth.closeSession(req);
      return send(200, { ok: true }, { 'set-cookie': this.sessionCookie('') });
    }
    // tandem console: a one-time login link (the token itself never goes into a URL).
    if (req.method === 'POST' && p === '/v1/session/ticket') {
      if (credential !== 'token') return send(403, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: 'POST /v1/session/ticket: ask with the control token itself' });
      const t = this.opts.auth.openTicket();
      return send(200, { ok: true, path: `${LOGIN_PATH}?ticket=${t.ticket}`, expiresInMs: t.expiresInMs });
    }
    if (req.method !== 'POST') return send(405, { code: 'TANDEM_ERR_USAGE', message: `${req.method} ${p}: method not allowed` });
    if (p.startsWith('/v1/peer/')) return this.relay(req, url, 'POST', send);
    if (p === '/v1/switchover') {
      const force = q.get('force') === '1';
      this.log.info({ force }, 'control: switchover requested by an operator');
      return answer(this.opts.switchover({ force }), this.guard.holdOpen(req));
    }
    if (p === '/v1/resolve') {
      const keep = q.get('keep') ?? '';
      this.log.warn({ keep }, 'control: split brain resolution requested by an operator');
      return answer(this.opts.resolve(keep).then((r) => ({ ...r, code: r.ok ? undefined : (r.code ?? 'TANDEM_ERR_RESOLVE_REFUSED') })), this.guard.holdOpen(req));
    }
    if (p === '/v1/verify' && this.opts.verify !== undefined) {
      try {
        const repair = q.get('repair') === '1';
        this.log.info({ repair }, 'control: verify requested by an operator');
        return send(202, { ok: true, verify: this.opts.verify.start(repair) });
      } catch (err) {
        const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'verify' });
        return send(e.code === 'TANDEM_ERR_INTERNAL' ? 500 : 409, { ok: false, ...e.toJSON() });
      }
    }
    if (p === '/v1/failover' && this.opts.failover !== undefined) {
      if (q.get('force') !== '1') return send(400, { code: 'TANDEM_ERR_USAGE', message: 'POST /v1/failover: only a forced failover can be asked (force=1); an automatic one needs no asking', hint: 'tandem failover --force -c CONFIG' });
      this.log.warn({}, 'control: forced failover requested by an operator');
      return answer(this.opts.failover(), this.guard.holdOpen(req));
    }
    if ((p === '/v1/replication/pause' || p === '/v1/replication/resume') && this.opts.pause !== undefined) return answer(this.opts.pause(p.endsWith('pause'), reason));
    if (p === '/v1/maintenance' && this.opts.maintenance !== undefined) {
      const on = q.get('on');
      if (on !== '1' && on !== '0') return send(400, { code: 'TANDEM_ERR_USAGE', message: 'POST /v1/maintenance: on=1 or on=0' });
      return answer(this.opts.maintenance(on === '1', reason));
    }
    if (p === '/v1/token' && this.opts.rotateToken !== undefined) {
      const salt = q.get('salt') ?? '';
      if (!TOKEN_SALT.test(salt)) return send(400, { code: 'TANDEM_ERR_USAGE', message: 'POST /v1/token: salt must be 32 to 128 hex digits' });
      return answer(this.opts.rotateToken(salt));
    }
    send(404, { code: 'TANDEM_ERR_USAGE', message: `no such endpoint: POST ${p}`, hint: 'POST /v1/switchover, /v1/resolve?keep=NODE, /v1/verify, /v1/failover?force=1, /v1/replication/pause, /v1/replication/resume, /v1/maintenance?on=1|0, /v1/token?salt=HEX, /v1/session, /v1/session/ticket, /v1/peer/…' });
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s === undefined) return;
    this.server = undefined;
    this.stopping = true;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
