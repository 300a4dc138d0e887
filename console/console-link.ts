// The login link of the console (Jupyter's token URL, done safely): the agent mints a ticket
// that opens one browser session within ten minutes (POST /v1/session/ticket, asked with the
// token derived from the pair key), so the token itself never lands in a URL, a browser's
// history or a terminal's scrollback.
import { TandemError } from '../shared/errors.ts';
import { callControl, type ControlCredentials } from './control-client.ts';

export interface ConsoleLink {
  url: string;
  expiresInMs: number;
}

/** The address a browser on this host uses for an API that listens on every address. */
export function browsableBase(baseUrl: string): string {
  const u = new URL(baseUrl);
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  if (u.hostname === '[::]') u.hostname = '[::1]';
  return u.origin;
}

export async function consoleLink(baseUrl: string, creds: ControlCredentials, timeoutMs = 5000): Promise<ConsoleLink> {
  const a = await callControl(baseUrl, 'POST', '/v1/session/ticket', creds, timeoutMs);
  const path = a.body.path;
  if (a.httpStatus !== 200 || typeof path !== 'string' || !path.startsWith('/console/login?ticket=')) {
    throw new TandemError({
      code: 'TANDEM_ERR_CONTROL_REFUSED',
      op: `POST ${baseUrl}/v1/session/ticket`,
      reason: typeof a.body.message === 'string' ? a.body.message : `HTTP ${a.httpStatus}`,
      hint: a.httpStatus === 404 ? 'this agent predates the console: upgrade it' : 'read the agent log',
    });
  }
  return { url: `${browsableBase(baseUrl)}${path}`, expiresInMs: typeof a.body.expiresInMs === 'number' ? a.body.expiresInMs : 0 };
}
