// The console's web page (console/web/), as the control API serves it: from the same origin as
// the API it reads, so the Host check and the cookie rules hold for it too. The build compiles
// the page and puts it into the agent's bundle (dashboard-assets.ts), so a running agent never
// reads a file to serve it and a newer build on disk never changes it.
//
// The page holds no secret and is served to anyone the Host check lets in; everything it shows
// comes from the API, behind the credentials. It must load nothing from elsewhere: the
// Content-Security-Policy allows this origin only, and no page may frame it.
import crypto from 'node:crypto';
import type http from 'node:http';
import zlib from 'node:zlib';
import { BUILT_DASHBOARD } from './dashboard-assets.ts';

/** What the build puts in: the page, its script and style, and the neutral favicon. */
export interface DashboardAssets {
  html: string;
  js: string;
  css: string;
  favicon: string;
}

/** The page compiled into this build; undefined when the agent runs from its sources (tests). */
export function builtInDashboard(): DashboardAssets | undefined {
  return BUILT_DASHBOARD;
}

export const DASHBOARD_PATH = '/console/';
export const LOGIN_PATH = '/console/login';

/** Headers of every page of the console: nothing from elsewhere, no framing, no referrer. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

export class DashboardFiles {
  private readonly files = new Map<string, Asset>();

  constructor(assets: DashboardAssets | undefined) {
    if (assets === undefined) return;
    const add = (name: string, type: string, text: string) => {
      const body = Buffer.from(text, 'utf8');
      const etag = `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
      this.files.set(name, { type, body, gzip: zlib.gzipSync(body, { level: 9 }), etag });
    };
    add(DASHBOARD_PATH, 'text/html; charset=utf-8', assets.html);
    add(`${DASHBOARD_PATH}app.js`, 'text/javascript; charset=utf-8', assets.js);
    add(`${DASHBOARD_PATH}app.css`, 'text/css; charset=utf-8', assets.css);
    add(`${DASHBOARD_PATH}favicon.svg`, 'image/svg+xml', assets.favicon);
  }

  get built(): boolean {
    return this.files.size > 0;
  }

  /** Bytes of each file as sent (raw and gzip), for the README's payload figure and the tests. */
  sizes(): Record<string, { bytes: number; gzip: number }> {
    return Object.fromEntries([...this.files].map(([p, a]) => [p, { bytes: a.body.length, gzip: a.gzip.length }]));
  }

  /** Answers GET/HEAD of a console file; false when `pathname` is none of them. */
  serve(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): boolean {
    if (pathname === '/' || pathname === '/console') {
      res.writeHead(302, { location: DASHBOARD_PATH, 'cache-control': 'no-store', ...PAGE_HEADERS });
      res.end();
      return true;
    }
    if (!pathname.startsWith(DASHBOARD_PATH)) return false;
    if (!this.built) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...PAGE_HEADERS });
      res.end('The console is not built into this agent (it runs from its sources): run npm run build, then start the agent with tandem agent.\n');
      return true;
    }
    const a = this.files.get(pathname);
    if (a === undefined) return false;
    // Revalidated at every load (a 304 costs a few bytes): an upgraded agent serves its own page at once.
    const headers: Record<string, string> = { 'content-type': a.type, 'cache-control': 'no-cache', etag: a.etag, vary: 'accept-encoding', ...PAGE_HEADERS };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? a.gzip : a.body;
    res.writeHead(200, { ...headers, 'content-length': String(body.length), ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
}
