// The console's only source: the control API that served the page (same origin, the session
// cookie), and the peer's through it (/v1/peer/…). Every answer is checked for its shape before
// use; an agent that does not answer is an answer too (ApiError), never an exception the page
// forgets to handle.
import type { ApiError } from './pair-model.ts';

export type Answer<T> = { ok: true; status: number; body: T } | { ok: false; status: number; error: ApiError };

/** Thrown nowhere: a 401 means the session ended (a restart, a rotated token): back to the login form. */
export const SESSION_ENDED = 401;

function errorOf(status: number, body: unknown, fallback: string): ApiError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; message?: unknown; hint?: unknown };
  return {
    code: typeof b.code === 'string' ? b.code : status === 0 ? 'TANDEM_ERR_CONTROL_UNREACHABLE' : 'TANDEM_ERR_CONTROL_REFUSED',
    message: typeof b.message === 'string' ? b.message : fallback,
    hint: typeof b.hint === 'string' ? b.hint : undefined,
  };
}

export async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, opts: { timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<Answer<T>> {
  let res: Response;
  try {
    res = await fetch(path, { method, credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json', ...(opts.headers ?? {}) }, signal: AbortSignal.timeout(opts.timeoutMs ?? 8000) });
  } catch (err) {
    const timedOut = err instanceof DOMException && err.name === 'TimeoutError';
    return { ok: false, status: 0, error: { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message: timedOut ? `${method} ${path}: no answer within ${Math.round((opts.timeoutMs ?? 8000) / 1000)} s` : `${method} ${path}: this console's agent does not answer`, hint: 'is the agent running? tandem status -c CONFIG' } };
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (res.status >= 200 && res.status < 300 && body !== undefined) return { ok: true, status: res.status, body: body as T };
  return { ok: false, status: res.status, error: errorOf(res.status, body, `${method} ${path}: HTTP ${res.status}`) };
}

/** Where a request for `node` goes: this API, or the peer's through it. */
export function nodePath(self: string, node: string, rest: string): string {
  return node === self ? `/v1/${rest}` : `/v1/peer/${rest}`;
}
