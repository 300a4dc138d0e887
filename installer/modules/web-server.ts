// Module `web`: a web server, either a systemd unit (nginx.service) or a command Tandem's scripts
// run in the background (its own session, pid file and log under /run/tandem). start waits until
// `url` answers below HTTP 400, so "start ok" means clients can be served; check asks `url` (three
// tries, half a second apart: one slow answer is not a failure, since a failed check restarts).
import { z } from 'zod';
import { httpCheck, shq, type ModuleContext, type ModuleScript } from './module-script.ts';
import { unitName } from './systemd-service.ts';

export const webModule = z
  .strictObject({
    module: z.literal('web'),
    /** The health check: an http(s) URL on this node that answers below 400 while the server works. */
    url: z.string().regex(/^https?:\/\/[^\s'"]+$/, 'expected an http(s) URL such as http://127.0.0.1:8080/'),
    unit: unitName.optional(),
    /** A command that runs the server in the foreground (started in the background by start). */
    command: z.string().min(1).max(4096).regex(/^[^\0\n\r]*$/, 'expected a command on one line').optional(),
    /** Seconds start waits for `url` to answer. */
    startTimeout: z.number().int().min(1).max(600).default(30),
  })
  .refine((m) => (m.unit === undefined) !== (m.command === undefined), { message: 'give either unit (a systemd service) or command (a server run by the scripts), not both' });

export type WebModule = z.output<typeof webModule>;

export function renderWebModule(m: WebModule, ctx: ModuleContext): ModuleScript {
  const f = `m${ctx.index}`;
  const daemon = `web-${ctx.index}`;
  const launch = m.unit !== undefined ? `systemctl start ${shq(m.unit)} || return 1` : `daemon_start ${daemon} ${shq(m.command!)} || return 1`;
  const halt = m.unit !== undefined ? `systemctl stop ${shq(m.unit)}` : `daemon_stop ${daemon}`;
  return {
    title: `web server ${m.unit ?? m.command!}, checked at ${m.url}`,
    helpers: `${f}_healthy() { ${httpCheck(ctx.nodeBin, m.url)}; }`,
    start: `${launch}
  i=0
  while [ $i -lt ${m.startTimeout * 10} ]; do
    if ${f}_healthy; then return 0; fi
    ${m.unit === undefined ? `daemon_alive ${daemon} || break` : ':'}
    sleep 0.1
    i=$((i + 1))
  done
  echo "web server: ${m.url} does not answer after ${m.startTimeout} s${m.unit === undefined ? `; see $RUN_DIR/${daemon}.log` : ''}" >&2
  ${halt}
  return 1`,
    stop: halt,
    check: `for try in 1 2 3; do
    if ${f}_healthy; then return 0; fi
    [ "$try" = 3 ] || sleep 0.5
  done
  echo "web server: ${m.url} does not answer" >&2
  return 1`,
    needs: m.unit !== undefined ? ['systemctl'] : ['setsid'],
  };
}
