// Who may use the control API. The token is a MAC of the pair key and a salt: whoever holds the
// key (the CLI on either node) derives it, and `tandem token rotate` gives both agents a new
// salt, which makes every token and session handed out before worthless without touching the
// pair key or restarting anything. The salt is no secret (a token still needs the key); refused
// requests are told it so that a key holder can derive the current token.
//
// Three ways to present a credential: the x-tandem-token header (the CLI), an Authorization
// bearer (Prometheus, load balancers, scripts), and a session cookie for browsers (POST
// /v1/session with the token, then HttpOnly + SameSite=Strict; requests that change anything
// with it must also carry an Origin of this very API: no other page can act with it).
//
// The console's login link (`tandem console`, as Jupyter's token URLs) carries a ticket, never
// the token: random, good for one login within LOGIN_TICKET_TTL_MS, so the link left in a
// browser's history or a terminal's scrollback opens nothing once used or old. The cookie's name
// carries the API's port: cookies ignore ports, and both nodes of a pair on one host (the demo)
// would otherwise overwrite each other's session in one browser.
import crypto from 'node:crypto';
import type http from 'node:http';
import type { Clock } from '../../shared/clock.ts';
import { CONTROL_TOKEN_HEADER } from '../../shared/constants.ts';

export const SESSION_COOKIE = 'tandem_session';
/** A browser session lasts this long since its last use. */
export const SESSION_IDLE_MS = 12 * 3_600_000;
/** Sessions kept at most; the least recently used goes first. */
export const MAX_SESSIONS = 32;
/** A login ticket of `tandem console` opens one session within this long. */
export const LOGIN_TICKET_TTL_MS = 10 * 60_000;
/** Tickets outstanding at most; the oldest goes first. */
export const MAX_LOGIN_TICKETS = 16;
/** A salt: 16 to 64 random bytes, in hex. */
export const TOKEN_SALT = /^([0-9a-f]{32,128})$/;

/** The control token: a MAC of the pair key (and of the salt after a rotation). */
export function controlToken(key: Buffer, salt = ''): string {
  return crypto.createHmac('sha256', key).update(salt === '' ? 'tandem control v1' : `tandem control v1:${salt}`).digest('hex');
}

export type Credential = 'token' | 'session';

/** The session cookie of the API listening on `port` (cookies are shared by every port of a host). */
export function sessionCookieName(port: number): string {
  return `${SESSION_COOKIE}_${port}`;
}

function safeEqual(a: string, b: string): boolean {
  return a.length === b.length && crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

export function cookieValue(req: http.IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export class ControlAuth {
  private token: string;
  private currentSalt: string;
  private readonly sessions = new Map<string, { lastUsed: number }>();
  /** Login ticket → when it stops working (monotonic ms). */
  private readonly tickets = new Map<string, number>();
  private cookie = SESSION_COOKIE;

  constructor(
    private readonly key: Buffer,
    salt: string,
    private readonly clock: Clock,
  ) {
    this.currentSalt = salt;
    this.token = controlToken(key, salt);
  }

  get salt(): string {
    return this.currentSalt;
  }

  /** The name of the session cookie (sessionCookieName once the API knows its port). */
  get sessionCookie(): string {
    return this.cookie;
  }

  useCookieName(name: string): void {
    this.cookie = name;
  }

  /** Which credential the request carries, if a valid one. */
  check(req: http.IncomingMessage): Credential | undefined {
    const header = req.headers[CONTROL_TOKEN_HEADER];
    if (typeof header === 'string' && safeEqual(header, this.token)) return 'token';
    const authz = req.headers.authorization;
    if (typeof authz === 'string' && /^Bearer /i.test(authz) && safeEqual(authz.slice(7).trim(), this.token)) return 'token';
    const sid = cookieValue(req, this.cookie);
    if (sid !== undefined) {
      const s = this.sessions.get(sid);
      const now = this.clock.monotonic();
      if (s !== undefined && now - s.lastUsed <= SESSION_IDLE_MS) {
        s.lastUsed = now;
        // Most recently used last: the first one is the one to drop when full.
        this.sessions.delete(sid);
        this.sessions.set(sid, s);
        return 'session';
      }
      if (s !== undefined) this.sessions.delete(sid);
    }
    return undefined;
  }

  /** A new browser session; the caller proved the token. */
  openSession(): string {
    const sid = crypto.randomBytes(32).toString('hex');
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(sid, { lastUsed: this.clock.monotonic() });
    return sid;
  }

  closeSession(req: http.IncomingMessage): void {
    const sid = cookieValue(req, this.cookie);
    if (sid !== undefined) this.sessions.delete(sid);
  }

  /** A one-time login ticket for a browser; the caller proved the token. */
  openTicket(): { ticket: string; expiresInMs: number } {
    const now = this.clock.monotonic();
    for (const [t, until] of this.tickets) if (until <= now) this.tickets.delete(t);
    while (this.tickets.size >= MAX_LOGIN_TICKETS) this.tickets.delete(this.tickets.keys().next().value!);
    const ticket = crypto.randomBytes(32).toString('hex');
    this.tickets.set(ticket, now + LOGIN_TICKET_TTL_MS);
    return { ticket, expiresInMs: LOGIN_TICKET_TTL_MS };
  }

  /** Spends a ticket: true once, within its time; false for anything else. */
  redeemTicket(ticket: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(ticket)) return false;
    const until = this.tickets.get(ticket);
    if (until === undefined) return false;
    this.tickets.delete(ticket);
    return this.clock.monotonic() < until;
  }

  /** A new salt: the old token, every session and every login ticket stop working at once. */
  rotate(salt: string): void {
    this.currentSalt = salt;
    this.token = controlToken(this.key, salt);
    this.sessions.clear();
    this.tickets.clear();
  }
}
