// Module `postgresql`: a PostgreSQL server whose data directory Tandem replicates as files (no
// PostgreSQL replication, so no promotion either: the passive's copy is started as it is). With
// `unit` systemd runs it; otherwise pg_ctl, as `user`. A failover finds the data directory as the
// dead active left it, postmaster.pid included: start removes a pid file whose process is not a
// PostgreSQL server before pg_ctl sees it. check: pg_ctl status, then pg_isready on the port and
// socket the running server wrote into postmaster.pid.
import { z } from 'zod';
import { shq, type ModuleContext, type ModuleScript } from './module-script.ts';
import { unitName } from './systemd-service.ts';

export const postgresqlModule = z.strictObject({
  module: z.literal('postgresql'),
  /** The data directory: must lie in a protected directory. */
  dataDir: z.string().regex(/^\/[^\0\n\r]*$/, 'expected an absolute path').refine((p) => !p.split('/').includes('..'), 'must not contain ".."'),
  unit: unitName.optional(),
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'expected a user name').default('postgres'),
  /** pg_ctl's path; default: pg_ctl on PATH, else the newest /usr/lib/postgresql/VERSION/bin/pg_ctl. */
  pgCtl: z.string().regex(/^\/[^\0\n\r]*$/, 'expected an absolute path').optional(),
  /** Options for the server (pg_ctl -o), e.g. "-c config_file=/etc/postgresql/15/main/postgresql.conf". */
  options: z.string().max(4096).regex(/^[^\0\n\r]*$/, 'expected options on one line').optional(),
  startTimeout: z.number().int().min(1).max(3600).default(120),
});

export type PostgresqlModule = z.output<typeof postgresqlModule>;

export function renderPostgresqlModule(m: PostgresqlModule, ctx: ModuleContext): ModuleScript {
  const f = `m${ctx.index}`;
  const data = shq(ctx.under(m.dataDir));
  const user = shq(m.user);
  const log = `"$RUN_DIR/postgresql-${ctx.index}.log"`;
  const find = m.pgCtl !== undefined ? `printf '%s\\n' ${shq(m.pgCtl)}` : `command -v pg_ctl || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1`;
  // Resolved: a pg_ctl on PATH is often a link (/usr/local/bin), and pg_isready lies beside the real one.
  const helpers = `${f}_pgctl() { p=$(${find}); [ -n "$p" ] && [ -x "$p" ] || { echo "postgresql: pg_ctl not found (set pgCtl in the module)" >&2; return 1; }; readlink -f "$p"; }
${f}_as() { if [ "$(id -un)" = ${user} ]; then "$@"; else runuser -u ${user} -- "$@"; fi; }
${f}_running() { pg=$(${f}_pgctl) || return 1; ${f}_as "$pg" -D ${data} status >/dev/null 2>&1; }`;
  if (m.unit !== undefined) {
    const unit = shq(m.unit);
    return {
      title: `PostgreSQL ${m.dataDir} (systemd ${m.unit})`,
      helpers,
      start: `systemctl start ${unit}`,
      stop: `systemctl stop ${unit}`,
      check: `systemctl is-active --quiet ${unit}`,
      needs: ['systemctl'],
    };
  }
  return {
    title: `PostgreSQL ${m.dataDir} (pg_ctl as ${m.user})`,
    helpers,
    start: `pg=$(${f}_pgctl) || return 1
  if ${f}_running; then return 0; fi
  # A pid file left by a server that died elsewhere (the old active) names no PostgreSQL here.
  if [ -f ${data}/postmaster.pid ]; then
    old=$(head -n 1 ${data}/postmaster.pid 2>/dev/null)
    case "$(cat "/proc/$old/comm" 2>/dev/null)" in postgres*) ;; *) rm -f ${data}/postmaster.pid ;; esac
  fi
  mkdir -p "$RUN_DIR" && : >> ${log} && chown ${user} ${log} || return 1
  ${f}_as "$pg" -D ${data} -w -t ${m.startTimeout} -l ${log}${m.options === undefined ? '' : ` -o ${shq(m.options)}`} start >/dev/null || { echo "postgresql: did not start; see ${'$'}RUN_DIR/postgresql-${ctx.index}.log" >&2; return 1; }`,
    stop: `${f}_running || return 0
  pg=$(${f}_pgctl) || return 1
  ${f}_as "$pg" -D ${data} -m fast -w -t ${m.startTimeout} stop >/dev/null`,
    check: `pg=$(${f}_pgctl) || return 1
  ${f}_running || { echo "postgresql: not running on ${m.dataDir}" >&2; return 1; }
  port=$(sed -n 4p ${data}/postmaster.pid); sock=$(sed -n 5p ${data}/postmaster.pid)
  "$(dirname "$pg")/pg_isready" -q -t 5 -p "$port" \${sock:+-h "$sock"} || { echo "postgresql: does not accept connections on port $port" >&2; return 1; }`,
    needs: ['runuser', 'sort'],
  };
}
