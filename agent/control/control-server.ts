// The agent's control API: HTTP on the control address. GET /v1/status answers the status
// document. Read-only for now; commands that change roles come with switchover and failover.
// It must never block on replication work: every answer is built from in-memory state.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../shared/log.ts';
import type { AgentStatus } from './status.ts';

export interface ControlServerOptions {
  host: string;
  port: number;
  status: () => AgentStatus;
  log: Logger;
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
      send(404, { code: 'TANDEM_ERR_USAGE', message: `no such endpoint: ${req.method} ${url.pathname}`, hint: 'GET /v1/status' });
    } catch (err) {
      this.log.error({ err }, 'control: request failed');
      send(500, { code: 'TANDEM_ERR_INTERNAL', message: (err as Error).message });
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s === undefined) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
