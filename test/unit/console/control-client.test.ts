// The command line's requests to the control API (status, and those that change something:
// switchover, resolve, verify…): on any port the agent can listen on, never following a redirect
// with the token, bounded in time and size. Against small HTTP servers on the loopback.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { callControl, ControlCredentials, fetchStatus, postControl } from '../../../console/control-client.ts';
import { CONTROL_TOKEN_HEADER } from '../../../shared/constants.ts';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

type Seen = { method: string; url: string; headers: http.IncomingHttpHeaders };

/** A server that records each request and answers with `answer`; on the first free of `ports` (0: any). */
async function server(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void, ports: number[] = [0]): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  for (const port of ports) {
    const s = http.createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      answer(req, res);
    });
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) continue;
    servers.push(s);
    return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
  }
  throw new Error(`none of the ports ${ports.join(', ')} is free`);
}

const json = (status: number, body: unknown) => (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

/** An answer without end, 1 MiB at a time: only the client's bound ends it. */
const endless = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  const chunk = Buffer.alloc(1 << 20, 0x61);
  res.writeHead(200, { 'content-type': 'application/json' });
  const more = () => {
    while (res.write(chunk)) if (res.destroyed) return;
    res.once('drain', more);
  };
  res.on('close', () => res.removeAllListeners('drain'));
  more();
};

describe('control requests of the command line', () => {
  it('reach a control API on a port the Fetch standard calls unsafe (fetch refused them: "bad port")', async () => {
    // 6665-6669 are on the Fetch standard's list of blocked ports, as 10080 is.
    const agent = await server(json(200, { ok: true }), [6665, 6666, 6667, 6668, 6669]);
    const answer = await callControl(agent.url, 'POST', '/v1/verify', undefined);
    expect(answer).toEqual({ httpStatus: 200, body: { ok: true } });
    expect(agent.seen).toMatchObject([{ method: 'POST', url: '/v1/verify' }]);
  });

  it('does not follow a redirect, so the token goes nowhere but the agent asked', async () => {
    const elsewhere = await server(json(200, { ok: true }));
    const agent = await server((_req, res) => {
      res.writeHead(307, { location: `${elsewhere.url}/v1/switchover` });
      res.end();
    });
    const creds = new ControlCredentials(Buffer.alloc(32, 7));
    const answer = await callControl(agent.url, 'POST', '/v1/switchover', creds);
    expect(answer.httpStatus).toBe(307);
    expect(agent.seen[0]!.headers[CONTROL_TOKEN_HEADER]).toBeTruthy();
    expect(elsewhere.seen).toEqual([]);
  });

  it('gives up when no answer comes in time: a switchover says it timed out, another request that the agent is unreachable', async () => {
    const agent = await server(() => {
      // Never answers.
    });
    expect(await postControl(agent.url, '/v1/switchover', new ControlCredentials(Buffer.alloc(32, 7)), 200)).toEqual({ kind: 'timed-out', afterMs: 200 });
    await expect(callControl(agent.url, 'GET', '/v1/events', undefined, 200)).rejects.toMatchObject({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE' });
  });
});

describe('ports Tandem chooses by itself', () => {
  it('knows the ports browsers and fetch refuse (the demo never listens on one)', async () => {
    const { isBrowserUnsafePort } = await import('../../../shared/unsafe-ports.ts');
    for (const p of [10080, 6000, 6666, 5060]) expect(isBrowserUnsafePort(p)).toBe(true);
    for (const p of [8080, 10081, 11900, 443]) expect(isBrowserUnsafePort(p)).toBe(false);
  });
});

describe('an answer that is not a control API\'s', () => {
  it('is cut off past 4 MiB: the request fails as unreachable, the client holds no more than that', async () => {
    const agent = await server(endless);
    await expect(callControl(agent.url, 'POST', '/v1/verify', undefined)).rejects.toMatchObject({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message: expect.stringMatching(/larger than 4194304 bytes/) });
  });
});

describe('the status read (tandem status, and every test that waits on a role)', () => {
  it('tries once more with the salt a refusal names, and reads the status then', async () => {
    const key = Buffer.alloc(32, 7);
    const salt = 'ab'.repeat(16);
    const good = new ControlCredentials(key).tokenWithSalt(salt);
    const agent = await server((req, res) => {
      if (req.headers[CONTROL_TOKEN_HEADER] === good) json(200, { node: 'alpha', role: 'active' })(req, res);
      else json(403, { ok: false, tokenSalt: salt })(req, res);
    });
    const creds = new ControlCredentials(key);
    expect(await fetchStatus(agent.url, 5000, creds)).toEqual({ node: 'alpha', role: 'active' });
    expect(agent.seen.map((s) => s.url)).toEqual(['/v1/status', '/v1/status']);
    // The salt is kept: the next read needs one request.
    await fetchStatus(agent.url, 5000, creds);
    expect(agent.seen).toHaveLength(3);
  });

  it('is refused, not retried for ever, when the salt named is the one already tried', async () => {
    const agent = await server(json(403, { ok: false, tokenSalt: 'cd'.repeat(16) }));
    await expect(fetchStatus(agent.url, 5000, new ControlCredentials(Buffer.alloc(32, 7)))).rejects.toMatchObject({ code: 'TANDEM_ERR_CONTROL_REFUSED', message: expect.stringMatching(/HTTP 403: no valid control token/) });
    expect(agent.seen).toHaveLength(2);
  });

  it('says unreachable when no answer comes in time, and refused when the answer is not a status document', async () => {
    const silent = await server(() => {
      // Never answers.
    });
    await expect(fetchStatus(silent.url, 200)).rejects.toMatchObject({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message: expect.stringMatching(/no answer within 200 ms/) });
    const other = await server(json(200, { hello: 'world' }));
    await expect(fetchStatus(other.url)).rejects.toMatchObject({ code: 'TANDEM_ERR_CONTROL_REFUSED', message: expect.stringMatching(/not a status document/) });
    const html = await server((_req, res) => res.end('<html>'));
    await expect(fetchStatus(html.url)).rejects.toMatchObject({ code: 'TANDEM_ERR_CONTROL_REFUSED', message: expect.stringMatching(/bad answer/) });
  });

  it('is cut off past 4 MiB and refused: whatever answers so much is not an agent', async () => {
    const agent = await server(endless);
    await expect(fetchStatus(agent.url)).rejects.toMatchObject({ code: 'TANDEM_ERR_CONTROL_REFUSED', message: expect.stringMatching(/larger than 4194304 bytes/) });
  });
});
