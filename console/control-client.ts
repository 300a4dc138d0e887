// How the CLI reaches an agent: the control address from the node's tandem.yaml.
import { loadConfig, type NodeAddresses } from '../shared/config/index.ts';
import { CONTROL_TOKEN_HEADER } from '../shared/constants.ts';
import { TandemError } from '../shared/errors.ts';
import { readPairKey } from '../shared/pair-key.ts';
import { controlToken, type AgentStatus } from '../agent/control/index.ts';

export function controlUrlFor(configPath: string): string {
  const c = loadConfig(configPath);
  const host = c.self.control.host.includes(':') ? `[${c.self.control.host}]` : c.self.control.host;
  return `http://${host}:${c.self.control.port}`;
}

export async function fetchStatus(baseUrl: string, timeoutMs = 5000): Promise<AgentStatus> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_UNREACHABLE',
      op: `GET ${baseUrl}/v1/status`,
      reason: (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message,
      hint: 'is the agent running? start it with: tandem agent -c CONFIG',
    });
  }
  if (!res.ok) {
    throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op: `GET ${baseUrl}/v1/status`, reason: `HTTP ${res.status}`, hint: 'check the agent log' });
  }
  return (await res.json()) as AgentStatus;
}

/** The control API address of either node of a loaded config (`self` or `peer`). */
export function controlUrlOf(node: NodeAddresses): string {
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
