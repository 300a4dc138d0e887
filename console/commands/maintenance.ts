// `tandem maintenance on|off`: the pair-wide hold on automatic role changes (Pacemaker's
// maintenance-mode, `patronictl pause`). Set on both nodes: a hold on the active alone would
// not stop its passive from failing over while the active is worked on. What an operator asks
// (switchover, failover --force) still happens, and an isolated active still steps down.
import { TandemError } from '../../shared/errors.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { askNode, pairTarget } from '../pair-target.ts';

export const maintenanceCommand: Command = {
  name: 'maintenance',
  summary: 'hold (on) or release (off) automatic role changes on both nodes',
  help: `Usage: tandem maintenance on|off -c CONFIG [--reason TEXT] [--json]

on:  no automatic role change on either node: no failover, no automatic switchover (public
     link, application check), no failback, and the application monitor does not restart the
     application. Replication goes on. tandem switchover and tandem failover --force still
     work, and an active cut off from everything still stops serving (never two active nodes).
off: back to automatic role changes.

The hold is set on both nodes (CONFIG names both) and survives agent restarts; status shows
"maintenance": true, the event stream a maintenance event, /metrics tandem_maintenance. It
needs the pair key (keyFile in CONFIG).

Options:
  -c, --config CONFIG   either node's tandem.yaml (required)
      --reason TEXT     why, for the event stream (at most 200 characters)
      --json            print {"ok", "nodes": [{node, ok, message} | {node, error}]}
  -h, --help            show this help

Exit codes: 0 set on both nodes, 1 set on one only or refused (the output says which), 3
neither agent answered, 2 usage error.`,
  async run(args) {
    const [mode, ...rest] = args;
    if (mode === '--help' || mode === '-h' || mode === undefined) {
      process.stdout.write(`${this.help}\n`);
      return mode === undefined ? EXIT.USAGE : EXIT.OK;
    }
    if (mode !== 'on' && mode !== 'off') {
      throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem maintenance', reason: `expected on or off, got "${mode}"`, hint: 'tandem maintenance on -c CONFIG' });
    }
    const { values } = parseCommandArgs('maintenance', rest, { config: { type: 'string', short: 'c' }, reason: { type: 'string' }, json: { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const t = pairTarget(requireOption('maintenance', values.config, '-c CONFIG'));
    const q = `/v1/maintenance?on=${mode === 'on' ? 1 : 0}${values.reason === undefined ? '' : `&reason=${encodeURIComponent(values.reason)}`}`;
    const outs = await Promise.all([t.self, t.peer].map((n) => askNode(t, n, q)));
    const rows = outs.map((o) => ('error' in o ? { node: o.node, ok: false, error: o.error.toJSON() } : { node: o.node, ok: o.answer.body.ok === true, message: String(o.answer.body.message) }));
    const all = rows.every((r) => r.ok);
    if (values.json === true) process.stdout.write(`${JSON.stringify({ ok: all, maintenance: mode, nodes: rows })}\n`);
    else for (const r of rows) process.stdout.write(`${r.node}: ${'error' in r ? `NOT SET: ${r.error?.message}` : r.message}\n`);
    if (all) return EXIT.OK;
    if (outs.every((o) => 'error' in o && o.error.code === 'TANDEM_ERR_CONTROL_UNREACHABLE')) return EXIT.UNREACHABLE;
    process.stderr.write(`error TANDEM_ERR_ACTION_REFUSED: tandem maintenance ${mode}: not set on every node\nhint: run it again once ${rows.filter((r) => !r.ok).map((r) => r.node).join(' and ')} answers${mode === 'on' ? '; until then that node may still change roles by itself' : ''}\n`);
    return EXIT.FAILED;
  },
};
