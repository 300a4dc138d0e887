// @ts-check
// The demo's protected application: a small web server showing the files of the node that
// serves it. Only the active node's start script runs it, on the pair's public address, so the
// page says which node answers and shows that the passive's copy is the same. Plain JavaScript
// (type-checked through JSDoc): it stands for the user's application, and starting without a
// TypeScript loader takes ~0.4 s off every failover and switchover.
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { root: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, node: { type: 'string' } },
});
const root = path.resolve(values.root ?? '.');
const node = values.node ?? 'unknown';
/** @type {Record<string, string>} */
const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
/** @param {string} s */
const esc = (s) => s.replace(/[&<>"]/g, (c) => ENTITIES[c] ?? c);

/** Files listed on the page, at most; each shows its first SNIPPET_CHARS characters. */
const MAX_LISTED = 200;
const SNIPPET_CHARS = 80;

/** @returns {Promise<{ rel: string, file: boolean }[]>} */
async function listing() {
  /** @type {{ rel: string, file: boolean }[]} */
  const out = [];
  /** @param {string} rel */
  const walk = async (rel) => {
    const entries = await fs.readdir(path.join(root, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (out.length >= MAX_LISTED) return;
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(r);
      else out.push({ rel: r, file: e.isFile() });
    }
  };
  await walk('');
  return out;
}

/**
 * The first characters of a regular file: reads at most 4 bytes per character, never the whole
 * file (a page once read every file whole: 2-31 s with a 50 MB file). Anything else (a pipe, a
 * socket) is not opened at all: opening a pipe waits for a writer.
 * @param {string} rel
 */
async function snippet(rel) {
  let fh;
  try {
    fh = await fs.open(path.join(root, rel), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
    if (!(await fh.stat()).isFile()) return '';
    const buf = Buffer.alloc(SNIPPET_CHARS * 4);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    // A character cut at the end decodes as U+FFFD and is dropped with the rest past 80.
    return Array.from(buf.toString('utf8', 0, bytesRead)).slice(0, SNIPPET_CHARS).join('');
  } catch {
    return '';
  } finally {
    await fh?.close();
  }
}

const server = http.createServer((req, res) => {
  void (async () => {
    const url = new URL(req.url ?? '/', 'http://demo');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': node });
      return res.end(JSON.stringify({ ok: true, node }));
    }
    if (url.pathname.startsWith('/files/')) {
      const rel = decodeURIComponent(url.pathname.slice('/files/'.length));
      const abs = path.resolve(root, rel);
      if (!abs.startsWith(`${root}${path.sep}`)) {
        res.writeHead(403);
        return res.end('outside the data directory\n');
      }
      if (req.method === 'PUT') {
        // The application's own writes: what a client was told is stored must survive a
        // failover or switchover (the fault tests count them).
        /** @type {Buffer[]} */
        const chunks = [];
        for await (const c of req) chunks.push(/** @type {Buffer} */ (c));
        await fs.mkdir(path.dirname(abs), { recursive: true });
        await fs.writeFile(abs, Buffer.concat(chunks));
        res.writeHead(201, { 'content-type': 'text/plain; charset=utf-8', 'x-served-by': node });
        return res.end('stored\n');
      }
      // Streamed, and regular files only: a large file never sits in memory whole.
      const st = await fs.lstat(abs).catch(() => undefined);
      if (st === undefined || !st.isFile()) {
        res.writeHead(404);
        return res.end('not found\n');
      }
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(st.size), 'x-served-by': node });
      return createReadStream(abs).on('error', () => res.destroy()).pipe(res);
    }
    const files = await listing();
    const rows = await Promise.all(
      files.map(async (f) => {
        const text = f.file ? await snippet(f.rel) : '';
        return `<li><a href="/files/${encodeURI(f.rel)}">${esc(f.rel)}</a> <small>${esc(text)}</small></li>`;
      }),
    );
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-served-by': node });
    res.end(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>Tandem demo</title>
<body style="font-family: sans-serif; max-width: 50em; margin: 2em auto">
<h1>Served by <span id="node">${esc(node)}</span></h1>
<p>This page is the protected application of the demo pair. It shows the files of the node that serves it;
edit them on the active node and watch the passive's copy follow.</p>
<ul id="files">${rows.join('\n')}</ul></body>`);
  })().catch((err) => {
    res.writeHead(500);
    res.end(String(err));
  });
});

server.listen(Number(values.port ?? 8080), values.host ?? '127.0.0.100', () => {
  process.stdout.write(`demo application of ${node} serving ${root} on http://${values.host}:${values.port}\n`);
});
for (const sig of /** @type {const} */ (['SIGTERM', 'SIGINT'])) process.on(sig, () => server.close(() => process.exit(0)));
