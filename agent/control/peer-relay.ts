// The peer's control API, reached through this one. The console is served by one node and shows
// both, but a browser may only talk to the API that served its page (same origin, Host check,
// cookie); so this node asks its peer on the browser's behalf, with the pair's own credential
// (the token both derive from the pair key), for a fixed list of endpoints.
//
// It must never reach anything but nodes.<peer>.control from the config (no address comes from
// the request), never relay a relayed request (two nodes configured with the same address would
// ask themselves for ever), never pass on more than a status-sized answer, and never hold more
// than MAX_RELAYED requests open. A peer that does not answer is an answer too: 502 with why.
import http from 'node:http';
import type { Clock } from '../../shared/clock.ts';
import { CONTROL_TOKEN_HEADER } from '../../shared/constants.ts';
import type { Logger } from '../../shared/log.ts';
import { LogLimiter } from '../channel/log-limiter.ts';
import { controlToken, TOKEN_SALT } from './control-auth.ts';

/** GET /v1/peer/X relays GET /v1/X for these X only. */
export const RELAY_READS: ReadonlySet<string> = new Set(['status', 'history', 'events', 'switchover', 'verify']);
/** POST /v1/peer/X relays POST /v1/X for these X only: never session, token or failover. */
export const RELAY_WRITES: ReadonlySet<string> = new Set(['switchover', 'replication/pause', 'replication/resume', 'maintenance', 'verify', 'resolve']);
/** Relayed requests open at once, at most. */
export const MAX_RELAYED = 8;
/** Names the node that relayed a request: the peer never relays it again, and the relaying node never acts on it. */
export const RELAY_HEADER = 'x-tandem-relayed';
/** An answer larger than this is not one a control API gives (a status document is a few KiB). */
export const MAX_RELAY_ANSWER_BYTES = 4 * 1024 * 1024;
/** A relayed read's time; an event long poll gets its wait on top, capped at RELAY_MAX_WAIT_S. */
const READ_TIMEOUT_MS = 5000;
const RELAY_MAX_WAIT_S = 25;
/** Switchover and resolve wait until the role moved (up to 120 s on the peer). */
const LONG_WRITE_TIMEOUT_MS = 130_000;
const WRITE_TIMEOUT_MS = 15_000;
/** Dashboards poll the peer's status every second or so; one answer serves them all this long. */
const STATUS_CACHE_MS = 500;

export interface RelayAnswer {
  status: number;
  body: unknown;
}

export interface PeerRelayOptions {
  self: string;
  peer: string;
  host: string;
  port: number;
  key: Buffer;
  /** This node's salt: the peer has the same one unless a rotation reached only one node. */
  salt: () => string;
  clock: Clock;
  log: Logger;
}

export class PeerRelay {
  private inFlight = 0;
  private peerSalt: string | undefined;
  private statusCache: { at: number; answer: Promise<RelayAnswer> } | undefined;
  private readonly limiter: LogLimiter;
  private readonly log: Logger;

  constructor(private readonly opts: PeerRelayOptions) {
    this.log = opts.log.child({ component: 'peer-relay' });
    this.limiter = new LogLimiter(opts.clock, 30_000);
  }

  get peerName(): string {
    return this.opts.peer;
  }

  /** The peer's control address, as the config names it. */
  get url(): string {
    const h = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `http://${h}:${this.opts.port}`;
  }

  /**
   * Relays `method /v1/<rest>?<search>` to the peer. `rest` must be on the list for its method;
   * the caller has checked the request's credential (and its Origin, for a browser's write).
   */
  relay(method: 'GET' | 'POST', rest: string, search: URLSearchParams): Promise<RelayAnswer> {
    const allowed = method === 'GET' ? RELAY_READS : RELAY_WRITES;
    if (!allowed.has(rest)) {
      return Promise.resolve({ status: 404, body: { ok: false, code: 'TANDEM_ERR_USAGE', message: `${method} /v1/peer/${rest.slice(0, 100)}: not relayed to the peer`, hint: `relayed: ${[...allowed].map((p) => `${method} /v1/peer/${p}`).join(', ')}` } });
    }
    const q = new URLSearchParams(search);
    let timeoutMs = method === 'GET' ? READ_TIMEOUT_MS : rest === 'switchover' || rest === 'resolve' ? LONG_WRITE_TIMEOUT_MS : WRITE_TIMEOUT_MS;
    if (rest === 'events' && q.has('wait')) {
      const s = /^(\d{1,5})s$/.exec(q.get('wait') ?? '');
      const wait = Math.min(RELAY_MAX_WAIT_S, s === null ? 0 : Number(s[1]));
      q.set('wait', `${wait}s`);
      timeoutMs += wait * 1000;
    }
    const query = q.toString();
    const target = `/v1/${rest}${query === '' ? '' : `?${query}`}`;
    if (method === 'GET' && rest === 'status' && query === '') {
      const now = this.opts.clock.monotonic();
      if (this.statusCache !== undefined && now - this.statusCache.at < STATUS_CACHE_MS) return this.statusCache.answer;
      const answer = this.limited(method, target, timeoutMs).then((a) => this.checkIdentity(a));
      this.statusCache = { at: now, answer };
      return answer;
    }
    return this.limited(method, target, timeoutMs);
  }

  /** A status answer from a node other than the peer: the address reaches the wrong API. */
  private checkIdentity(a: RelayAnswer): RelayAnswer {
    if (a.status !== 200) return a;
    const node = (a.body as { node?: unknown } | null)?.node;
    if (node === this.opts.peer) return a;
    const who = typeof node === 'string' ? node.slice(0, 64) : 'something that is not a Tandem agent';
    return this.unreachable(`GET ${this.url}/v1/status`, `nodes.${this.opts.peer}.control (${this.url}) answers as ${who}, not ${this.opts.peer}`, `give each node a control address the other can reach (a management network), or open the console on ${this.opts.peer}'s own host`);
  }

  private async limited(method: 'GET' | 'POST', target: string, timeoutMs: number): Promise<RelayAnswer> {
    if (this.inFlight >= MAX_RELAYED) {
      return { status: 503, body: { ok: false, code: 'TANDEM_ERR_CONTROL_REFUSED', message: `${method} /v1/peer: ${MAX_RELAYED} requests to ${this.opts.peer} are open already`, hint: 'try again in a moment' } };
    }
    this.inFlight += 1;
    try {
      let a = await this.once(method, target, timeoutMs);
      // The peer's salt differs (a rotation reached only one node): its refusal names it.
      if ((a.status === 401 || a.status === 403) && this.learnSalt(a.body)) a = await this.once(method, target, timeoutMs);
      return a;
    } finally {
      this.inFlight -= 1;
    }
  }

  private learnSalt(body: unknown): boolean {
    const salt = (body as { tokenSalt?: unknown } | null)?.tokenSalt;
    if (typeof salt !== 'string' || (salt !== '' && !TOKEN_SALT.test(salt)) || salt === (this.peerSalt ?? this.opts.salt())) return false;
    this.peerSalt = salt;
    return true;
  }

  private unreachable(op: string, reason: string, hint = `is ${this.opts.peer}'s agent running? tandem status -c CONFIG`): RelayAnswer {
    const admitted = this.limiter.admit(this.opts.peer);
    if (admitted !== undefined) this.log.info({ peer: this.opts.peer, op, reason }, 'peer relay: the peer does not answer');
    return { status: 502, body: { ok: false, code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message: `${op}: ${reason}`, hint, peer: this.opts.peer } };
  }

  private once(method: 'GET' | 'POST', target: string, timeoutMs: number): Promise<RelayAnswer> {
    const op = `${method} ${this.url}${target.split('?')[0]}`;
    const token = controlToken(this.opts.key, this.peerSalt ?? this.opts.salt());
    const hostHeader = `${this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host}:${this.opts.port}`;
    return new Promise<RelayAnswer>((resolve) => {
      let done = false;
      const finish = (a: RelayAnswer) => {
        if (done) return;
        done = true;
        timer.cancel();
        req.destroy();
        resolve(a);
      };
      // No keep-alive pool: a relay is rare next to the cost of a stale pooled socket to a peer that restarted.
      const req = http.request(
        { host: this.opts.host, port: this.opts.port, method, path: target, agent: false, headers: { host: hostHeader, accept: 'application/json', [CONTROL_TOKEN_HEADER]: token, [RELAY_HEADER]: this.opts.self } },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RELAY_ANSWER_BYTES) finish(this.unreachable(op, `answer larger than ${MAX_RELAY_ANSWER_BYTES} bytes`, `is nodes.${this.opts.peer}.control really ${this.opts.peer}'s Tandem agent?`));
            else chunks.push(c);
          });
          res.on('error', (err) => finish(this.unreachable(op, err.message)));
          res.on('end', () => {
            let body: unknown;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              return finish(this.unreachable(op, `HTTP ${res.statusCode ?? '?'} with an answer that is not JSON`, `is nodes.${this.opts.peer}.control really ${this.opts.peer}'s Tandem agent?`));
            }
            finish({ status: res.statusCode ?? 502, body });
          });
        },
      );
      req.on('error', (err) => finish(this.unreachable(op, err.message)));
      const timer = this.opts.clock.setTimeout(() => finish(this.unreachable(op, `no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
      req.end();
    });
  }
}
