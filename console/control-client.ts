// How the CLI reaches an agent: the control address from the node's tandem.yaml, and the
// control token, derived from the pair key (and the salt the agent holds since the last
// `tandem token rotate`, which a refused request answers with). Light on purpose (node:http,
// no schema): `tandem status` loads this and little else.
import http from 'node:http';
import type { NodeAddresses } from '../shared/config/load.ts';
import { CONTROL_TOKEN_HEADER } from '../shared/constants.ts';
import { TandemError } from '../shared/errors.ts';
import { readPairKey } from '../shared/pair-key.ts';
import { controlToken, TOKEN_SALT } from '../agent/control/control-auth.ts';
import type { AgentStatus } from '../agent/control/index.ts';

/**
 * Proof that the caller holds the pair key: the token of each agent, derived from the key and
 * that agent's salt, learnt when a request is refused for want of the current token.
 */
export class ControlCredentials {
  private readonly salts = new Map<string, string>();

  constructor(private readonly key: Buffer) {}

  /** The token for an agent whose salt is `salt` (GET /v1/auth tells it). */
  tokenWithSalt(salt: string): string {
    return controlToken(this.key, salt);
  }

  /** The token for the agent at `baseUrl`, as far as its salt is known. */
  tokenFor(baseUrl: string): string {
    return controlToken(this.key, this.salts.get(baseUrl) ?? '');
  }

  headersFor(baseUrl: string): Record<string, string> {
    return { [CONTROL_TOKEN_HEADER]: this.tokenFor(baseUrl) };
  }

  /** A refusal told the agent's salt: true when it is new (the request is worth one more try). */
  learn(baseUrl: string, body: unknown): boolean {
    const salt = (body as { tokenSalt?: unknown } | undefined)?.tokenSalt;
    if (typeof salt !== 'string' || (salt !== '' && !TOKEN_SALT.test(salt)) || salt === (this.salts.get(baseUrl) ?? '')) return false;
    this.salts.set(baseUrl, salt);
    return true;
  }
}

/** An answer of the control API larger than this is not one (a status document is a few KiB). */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/** An answer cut off at MAX_ANSWER_BYTES: whatever sent it is not a control API. */
class AnswerTooLarge extends Error {
  constructor() {
    super(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
  }
}

/** Why a request got no answer, for a TANDEM_ERR_CONTROL_UNREACHABLE: the timeout, or the socket's error. */
function unreachableReason(err: unknown, timeoutMs: number): string {
  if ((err as Error).name === 'TimeoutError') return `no answer within ${Math.round(timeoutMs)} ms`;
  return (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
}

/**
 * One HTTP request to the control API, by node:http rather than fetch: fetch refuses the ports
 * the Fetch standard lists as unsafe (6000, 6665-6669, 10080 and others), so a control API an
 * operator put on one of them answered `tandem status` (which uses http) but not `tandem
 * switchover` ("bad port"). And fetch follows redirects, sending the token header along; this
 * does not. On `signal`'s timeout it rejects with the signal's reason (a TimeoutError).
 */
function controlRequest(url: string, method: string, headers: Record<string, string>, signal: AbortSignal): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(signal.aborted ? (signal.reason as Error) : err);
    const req = http.request(url, { method, agent: false, headers: { ...headers, 'content-length': '0' }, signal }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > MAX_ANSWER_BYTES) req.destroy(new AnswerTooLarge());
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
  });
}

/**
 * A request that presents the credentials (if any) and, once, tries again with the salt a
 * refusal names. Answers the last response's status and text. `timeoutMs` bounds the whole,
 * the retry included; on it the request rejects with a TimeoutError.
 */
async function requestControl(url: string, init: { baseUrl: string; method: string; timeoutMs: number; headers?: Record<string, string> }, creds: ControlCredentials | undefined): Promise<{ status: number; text: string }> {
  // Whole milliseconds, at least one: AbortSignal.timeout refuses fractions.
  const signal = AbortSignal.timeout(Math.max(1, Math.ceil(init.timeoutMs)));
  for (let attempt = 0; ; attempt++) {
    const headers = { ...init.headers, ...(creds?.headersFor(init.baseUrl) ?? {}) };
    const res = await controlRequest(url, init.method, headers, signal);
    if ((res.status === 401 || res.status === 403) && creds !== undefined && attempt === 0) {
      let body: unknown;
      try {
        body = JSON.parse(res.text);
      } catch {
        body = undefined;
      }
      if (creds.learn(init.baseUrl, body)) continue;
    }
    return res;
  }
}

/**
 * GET /v1/status. Throws TANDEM_ERR_CONTROL_UNREACHABLE when no answer came within
 * `timeoutMs` (a retry with a new salt included), TANDEM_ERR_CONTROL_REFUSED when the answer is
 * not a status document. `creds`: needed when the agent's control API listens beyond the
 * loopback (reads need the token there); a refusal that names another salt is tried once more
 * with it.
 */
export async function fetchStatus(baseUrl: string, timeoutMs = 5000, creds?: ControlCredentials): Promise<AgentStatus> {
  const op = `GET ${baseUrl}/v1/status`;
  const notAgent = 'is CONFIG\'s control address really a Tandem agent?';
  let res: { status: number; text: string };
  try {
    res = await requestControl(`${baseUrl}/v1/status`, { baseUrl, method: 'GET', timeoutMs }, creds);
  } catch (err) {
    if (err instanceof AnswerTooLarge) throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: err.message, hint: notAgent });
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op, reason: unreachableReason(err, timeoutMs), hint: 'is the agent running? start it with: tandem agent -c CONFIG' });
  }
  if (res.status !== 200) {
    const auth = res.status === 401 || res.status === 403;
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_REFUSED',
      op,
      reason: `HTTP ${res.status}${auth ? ': no valid control token' : ''}`,
      hint: auth ? 'run the command on a host that holds the pair key (keyFile in CONFIG): reads need the token when the control API listens beyond the loopback' : 'check the agent log',
    });
  }
  let doc: AgentStatus;
  try {
    doc = JSON.parse(res.text) as AgentStatus;
    if (typeof doc !== 'object' || doc === null || typeof doc.node !== 'string') throw new Error('not a status document');
  } catch (err) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: `bad answer: ${(err as Error).message}`, hint: notAgent });
  }
  return doc;
}

/** The control API address of either node of a loaded config (`self` or `peer`). */
export function controlUrlOf(node: Pick<NodeAddresses, 'control'>): string {
  const host = node.control.host.includes(':') ? `[${node.control.host}]` : node.control.host;
  return `http://${host}:${node.control.port}`;
}

/** The credentials the control API asks of requests that change anything: proof that the caller holds the pair key. */
export function controlTokenFor(keyFile: string): ControlCredentials {
  return new ControlCredentials(readPairKey(keyFile));
}

/** The credentials if this user can read the pair key; reads on the loopback work without. */
export function optionalCredentials(keyFile: string): ControlCredentials | undefined {
  try {
    return controlTokenFor(keyFile);
  } catch {
    return undefined;
  }
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
export function postSwitchover(baseUrl: string, token: ControlCredentials, timeoutMs: number, force = false): Promise<SwitchoverAnswer> {
  return postControl(baseUrl, force ? '/v1/switchover?force=1' : '/v1/switchover', token, timeoutMs);
}

/** POST to a control endpoint that changes something (switchover, resolve); same answers as postSwitchover. */
export async function postControl(baseUrl: string, pathAndQuery: string, token: ControlCredentials, timeoutMs: number): Promise<SwitchoverAnswer> {
  const op = `POST ${baseUrl}${pathAndQuery}`;
  let res: { status: number };
  let text: string;
  try {
    ({ text, ...res } = await requestControl(`${baseUrl}${pathAndQuery}`, { baseUrl, method: 'POST', timeoutMs }, token));
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') return { kind: 'timed-out', afterMs: timeoutMs };
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op, reason: unreachableReason(err, timeoutMs), hint: 'is the agent running? tandem status -c CONFIG' });
  }
  let body: { ok?: unknown; code?: unknown; message?: unknown; hint?: unknown } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Not JSON: reported below with the HTTP status only.
  }
  const message = typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
  if (res.status === 403 || res.status === 401) {
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
export async function callVerify(baseUrl: string, method: 'GET' | 'POST', token: ControlCredentials, repair: boolean, timeoutMs = 10_000): Promise<VerifyAnswer> {
  const pathAndQuery = `/v1/verify${method === 'POST' && repair ? '?repair=1' : ''}`;
  const a = await callControl(baseUrl, method, pathAndQuery, token, timeoutMs);
  if (a.httpStatus === 404) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op: `${method} ${baseUrl}${pathAndQuery}`, reason: 'the agent has no verify endpoint', hint: 'upgrade the agent to a version with tandem verify' });
  }
  return a;
}

/** One answer of a control endpoint: the HTTP status and the parsed body. */
export interface ControlAnswer {
  httpStatus: number;
  body: Record<string, any>;
}

/**
 * GET or POST any control endpoint and read its JSON answer. Throws
 * TANDEM_ERR_CONTROL_UNREACHABLE when no connection could be made, TANDEM_ERR_CONTROL_REFUSED
 * when the credentials are refused; every other answer is the caller's to read.
 */
export async function callControl(baseUrl: string, method: 'GET' | 'POST', pathAndQuery: string, creds: ControlCredentials | undefined, timeoutMs = 10_000): Promise<ControlAnswer> {
  const op = `${method} ${baseUrl}${pathAndQuery}`;
  let res: { status: number };
  let text: string;
  try {
    ({ text, ...res } = await requestControl(`${baseUrl}${pathAndQuery}`, { baseUrl, method, timeoutMs }, creds));
  } catch (err) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op, reason: unreachableReason(err, timeoutMs), hint: 'is the agent running? tandem status -c CONFIG' });
  }
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(text) as Record<string, any>;
  } catch {
    // Not JSON: the HTTP status says enough.
  }
  if (res.status === 401 || res.status === 403) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op, reason: typeof body.message === 'string' ? body.message : `HTTP ${res.status}`, hint: 'the key file named by keyFile in CONFIG must be the pair key the agents use' });
  }
  return { httpStatus: res.status, body };
}
