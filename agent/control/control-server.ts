// The agent's control API: HTTP on the control address. GET /v1/status answers the status
// document; POST /v1/switchover asks the active node to hand its role over; POST
// /v1/resolve?keep=NODE ends a split brain; POST /v1/verify starts (or joins) a verification on
// the active node and GET /v1/verify reports it. Requests that change
// anything must carry the control token (derived from the pair key). Status answers never block
// on replication work: they are built from in-memory state.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TandemError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { CONTROL_TOKEN_HEADER } from '../../shared/constants.ts';
import type { AgentStatus } from './status.ts';

export interface ControlServerOptions {
  host: string;
  port: number;
  status: () => AgentStatus;
  /** Required in the x-tandem-token header of requests that change anything. */
  token: string;
  switchover: () => Promise<{ ok: boolean; message: string }>;
  /** tandem resolve --keep NODE: ends a split brain (on the active node). */
  resolve: (keep: string) => Promise<{ ok: boolean; message: string; code?: string | undefined }>;
  /** `tandem verify`: start or join one (throws a TandemError when refused), and report it. */
  verify?: { start(repair: boolean): unknown; report(): unknown } | undefined;
  log: Logger;
}

/** The control token: a MAC of the pair key, so the CLI (which can read the key) can prove itself. */
export function controlToken(key: Buffer): string {
  return crypto.createHmac('sha256', key).update('tandem control v1').digest('hex');
}

export class ControlServer {
  private server: http.Server | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: ControlServerOptions) {
    this.log = opts.log.child({ component: 'control' });
  }

  async listen(): Promise<number> {
    const server = http.createServer((req, res) => this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    this.log.info({ host: this.opts.host, port }, 'control: listening');
    return port;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://control');
    const send = (code: number, body: unknown) => {
      const text = `${JSON.stringify(body, null, 2)}\n`;
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(text);
    };
    try {
      if (req.method === 'GET' && url.pathname === '/v1/status') return send(200, this.opts.status());
      if (req.method === 'GET' && url.pathname === '/healthz') return send(200, { ok: true });
      if (req.method === 'POST' && url.pathname === '/v1/switchover') {
        req.resume();
        if (!this.authorised(req)) {
          this.log.warn({ remote: req.socket.remoteAddress }, 'control: switchover refused: no valid control token');
          return send(403, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: 'switchover: no valid control token', hint: 'use tandem switchover -c CONFIG on a host that holds the pair key' });
        }
        this.log.info({}, 'control: switchover requested by an operator');
        void this.opts.switchover().then(
          (r) => send(r.ok ? 200 : 409, r.ok ? { ok: true, message: r.message } : { ok: false, code: 'TANDEM_ERR_SWITCHOVER_FAILED', message: r.message }),
          (err: unknown) => send(500, { code: 'TANDEM_ERR_INTERNAL', message: (err as Error).message }),
        );
        return;
      }
      if (req.method === 'POST' && url.pathname === '/v1/resolve') {
        req.resume();
        if (!this.authorised(req)) {
          this.log.warn({ remote: req.socket.remoteAddress }, 'control: resolve refused: no valid control token');
          return send(403, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: 'resolve: no valid control token', hint: 'use tandem resolve -c CONFIG on a host that holds the pair key' });
        }
        const keep = url.searchParams.get('keep') ?? '';
        this.log.warn({ keep }, 'control: split brain resolution requested by an operator');
        void this.opts.resolve(keep).then(
          (r) => send(r.ok ? 200 : 409, r.ok ? { ok: true, message: r.message } : { ok: false, code: r.code ?? 'TANDEM_ERR_RESOLVE_REFUSED', message: r.message }),
          (err: unknown) => send(500, { code: 'TANDEM_ERR_INTERNAL', message: (err as Error).message }),
        );
        return;
      }
      if (url.pathname === '/v1/verify' && (req.method === 'GET' || req.method === 'POST') && this.opts.verify !== undefined) {
        req.resume();
        if (req.method === 'POST' && !this.authorised(req)) {
          this.log.warn({ remote: req.socket.remoteAddress }, 'control: verify refused: no valid control token');
          return send(403, { code: 'TANDEM_ERR_CONTROL_REFUSED', message: 'verify: no valid control token', hint: 'use tandem verify -c CONFIG on a host that holds the pair key' });
        }
        try {
          if (req.method === 'GET') return send(200, { verify: this.opts.verify.report() ?? null });
          const repair = url.searchParams.get('repair') === '1';
          this.log.info({ repair }, 'control: verify requested by an operator');
          return send(202, { ok: true, verify: this.opts.verify.start(repair) });
        } catch (err) {
          const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'verify' });
          return send(e.code === 'TANDEM_ERR_INTERNAL' ? 500 : 409, { ok: false, ...e.toJSON() });
        }
      }
      send(404, { code: 'TANDEM_ERR_USAGE', message: `no such endpoint: ${req.method} ${url.pathname}`, hint: 'GET /v1/status, POST /v1/switchover, POST /v1/resolve?keep=NODE, GET or POST /v1/verify' });
    } catch (err) {
      this.log.error({ err }, 'control: request failed');
      send(500, { code: 'TANDEM_ERR_INTERNAL', message: (err as Error).message });
    }
  }

  private authorised(req: http.IncomingMessage): boolean {
    const got = req.headers[CONTROL_TOKEN_HEADER];
    if (typeof got !== 'string' || got.length !== this.opts.token.length) return false;
    return crypto.timingSafeEqual(Buffer.from(got), Buffer.from(this.opts.token));
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s === undefined) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
