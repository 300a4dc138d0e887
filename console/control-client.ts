// How the CLI reaches an agent: the control address from the node's tandem.yaml. Light on
// purpose (node:http, no schema): `tandem status` loads this and little else.
import http from 'node:http';
import type { NodeAddresses } from '../shared/config/load.ts';
import { CONTROL_TOKEN_HEADER } from '../shared/constants.ts';
import { TandemError } from '../shared/errors.ts';
import { readPairKey } from '../shared/pair-key.ts';
import { controlToken, type AgentStatus } from '../agent/control/index.ts';

/** A status document larger than this is not one (an agent's is a few KiB). */
const MAX_STATUS_BYTES = 4 * 1024 * 1024;

/**
 * GET /v1/status. Throws TANDEM_ERR_CONTROL_UNREACHABLE when no answer came within
 * `timeoutMs`, TANDEM_ERR_CONTROL_REFUSED when the answer is not a status document.
 */
export function fetchStatus(baseUrl: string, timeoutMs = 5000): Promise<AgentStatus> {
  const op = `GET ${baseUrl}/v1/status`;
  return new Promise<AgentStatus>((resolve, reject) => {
    let done = false;
    const finish = (err: TandemError | undefined, value?: AgentStatus) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      if (err !== undefined) reject(err);
      else resolve(value!);
    };
    const unreachable = (reason: string) =>
      new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op, reason, hint: 'is the agent running? start it with: tandem agent -c CONFIG' });
    // No keep-alive agent: a pooled socket would hold the command open after its answer.
    const req = http.get(`${baseUrl}/v1/status`, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_STATUS_BYTES) finish(new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: `answer larger than ${MAX_STATUS_BYTES} bytes`, hint: 'is CONFIG\'s control address really a Tandem agent?' }));
        else chunks.push(c);
      });
      res.on('error', (err) => finish(unreachable(err.message)));
      res.on('end', () => {
        if (res.statusCode !== 200) {
          finish(new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: `HTTP ${res.statusCode}`, hint: 'check the agent log' }));
          return;
        }
        try {
          const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AgentStatus;
          if (typeof doc !== 'object' || doc === null || typeof doc.node !== 'string') throw new Error('not a status document');
          finish(undefined, doc);
        } catch (err) {
          finish(new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: `bad answer: ${(err as Error).message}`, hint: 'is CONFIG\'s control address really a Tandem agent?' }));
        }
      });
    });
    req.on('error', (err) => finish(unreachable(err.message)));
    const timer = setTimeout(() => finish(unreachable(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
}

/** The control API address of either node of a loaded config (`self` or `peer`). */
export function controlUrlOf(node: Pick<NodeAddresses, 'control'>): string {
  const host = node.control.host.includes(':') ? `[${node.control.host}]` : node.control.host;
  return `http://${host}:${node.control.port}`;
}

/** The token the control API asks of requests that change anything: proof that the caller holds the pair key. */
export function controlTokenFor(keyFile: string): string {
  return controlToken(readPairKey(keyFile));
}

/**
 * What POST /v1/switchover said: `answered` with the agent's verdict (200: the role moved; 409:
 * refused or rolled back), or `timed-out`, when the outcome is unknown: the agent carries on
 * with a switchover it started even after the CLI stopped waiting.
 */
export type SwitchoverAnswer = { kind: 'answered'; ok: boolean; httpStatus: number; code: string | undefined; message: string } | { kind: 'timed-out'; afterMs: number };

/**
 * Asks the agent at `baseUrl` to hand its active role over and waits for its verdict. Throws
 * TANDEM_ERR_CONTROL_UNREACHABLE when no connection could be made, TANDEM_ERR_CONTROL_REFUSED
 * when the token is refused, TANDEM_ERR_INTERNAL when the agent failed.
 */
export function postSwitchover(baseUrl: string, token: string, timeoutMs: number): Promise<SwitchoverAnswer> {
  return postControl(baseUrl, '/v1/switchover', token, timeoutMs);
}

/** POST to a control endpoint that changes something (switchover, resolve); same answers as postSwitchover. */
export async function postControl(baseUrl: string, pathAndQuery: string, token: string, timeoutMs: number): Promise<SwitchoverAnswer> {
  const op = `POST ${baseUrl}${pathAndQuery}`;
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${baseUrl}${pathAndQuery}`, { method: 'POST', headers: { [CONTROL_TOKEN_HEADER]: token }, signal: AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs))) });
    text = await res.text();
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') return { kind: 'timed-out', afterMs: timeoutMs };
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_UNREACHABLE',
      op,
      reason: (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message,
      hint: 'is the agent running? tandem status -c CONFIG',
    });
  }
  let body: { ok?: unknown; code?: unknown; message?: unknown; hint?: unknown } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Not JSON: reported below with the HTTP status only.
  }
  const message = typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
  if (res.status === 403) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_REFUSED',
      op,
      reason: message,
      hint: 'the key file named by keyFile in CONFIG must be the pair key the agents use',
    });
  }
  if (res.status === 200 || res.status === 409) {
    return { kind: 'answered', ok: res.status === 200 && body.ok === true, httpStatus: res.status, code: typeof body.code === 'string' ? body.code : undefined, message };
  }
  throw new TandemError({ code: res.status >= 500 ? 'TANDEM_ERR_INTERNAL' : 'TANDEM_ERR_CONTROL_REFUSED', op, reason: message, hint: 'read the agent log' });
}

/** One answer of the verify endpoints: the HTTP status and the parsed body. */
export interface VerifyAnswer {
  httpStatus: number;
  body: Record<string, any>;
}

/**
 * POST /v1/verify (start or join, `repair` as asked) or GET /v1/verify (the report). Throws
 * TANDEM_ERR_CONTROL_UNREACHABLE when no connection could be made, TANDEM_ERR_CONTROL_REFUSED
 * when the token is refused.
 */
export async function callVerify(baseUrl: string, method: 'GET' | 'POST', token: string, repair: boolean, timeoutMs = 10_000): Promise<VerifyAnswer> {
  const url = `${baseUrl}/v1/verify${method === 'POST' && repair ? '?repair=1' : ''}`;
  const op = `${method} ${url}`;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { method, headers: { [CONTROL_TOKEN_HEADER]: token }, signal: AbortSignal.timeout(timeoutMs) });
    text = await res.text();
  } catch (err) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_UNREACHABLE',
      op,
      reason: (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message,
      hint: 'is the agent running? tandem status -c CONFIG',
    });
  }
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(text) as Record<string, any>;
  } catch {
    // Not JSON: the HTTP status says enough.
  }
  if (res.status === 403) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: typeof body.message === 'string' ? body.message : 'HTTP 403', hint: 'the key file named by keyFile in CONFIG must be the pair key the agents use' });
  }
  if (res.status === 404) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: 'the agent has no verify endpoint', hint: 'upgrade the agent to a version with tandem verify' });
  }
  return { httpStatus: res.status, body };
}
