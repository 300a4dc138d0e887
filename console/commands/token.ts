// `tandem token rotate|show`: the control credentials. The token is derived from the pair key and
// a salt each agent keeps (agent/control/control-auth.ts); rotating gives both agents a new salt,
// so every token and browser session handed out before stops working, with nothing restarted
// and the pair key untouched. `show` prints the current token for tools that cannot derive it
// (Prometheus, load balancers, scripts): treat it like a password.
import crypto from 'node:crypto';
import { TandemError } from '../../shared/errors.ts';
import { parseCommandArgs, requireOption } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { callControl } from '../control-client.ts';
import { askNode, pairTarget } from '../pair-target.ts';

export const tokenCommand: Command = {
  name: 'token',
  summary: 'rotate the control token on both nodes, or show it (for Prometheus and scripts)',
  help: `Usage: tandem token rotate -c CONFIG [--json]
       tandem token show -c CONFIG [--node NODE]

rotate: gives both agents a new token at once (no restart; the pair key is not changed).
        Tokens given out before (monitoring, scripts) and browser sessions stop working;
        tandem commands go on working, since they derive the token from the pair key.
show:   prints the current token of CONFIG's node (or NODE's), for tools that cannot derive
        it; send it as "Authorization: Bearer TOKEN". Treat it like a password.

Both need the pair key (keyFile in CONFIG).

Options:
  -c, --config CONFIG   either node's tandem.yaml (required)
      --node NODE       show: the node whose token to print (default: CONFIG's node)
      --json            rotate: print {"ok", "nodes": [...]}
  -h, --help            show this help

Exit codes: 0 done, 1 rotated on one node only (run it again once the other answers), 3 no
agent answered, 2 usage error.`,
  async run(args) {
    const [mode, ...rest] = args;
    if (mode === '--help' || mode === '-h' || mode === undefined) {
      process.stdout.write(`${this.help}\n`);
      return mode === undefined ? EXIT.USAGE : EXIT.OK;
    }
    if (mode !== 'rotate' && mode !== 'show') throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem token', reason: `expected rotate or show, got "${mode}"`, hint: 'tandem token --help' });
    const { values } = parseCommandArgs('token', rest, { config: { type: 'string', short: 'c' }, node: { type: 'string' }, json: { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const t = pairTarget(requireOption('token', values.config, '-c CONFIG'));
    if (mode === 'show') {
      const n = values.node === undefined || values.node === t.self.name ? t.self : values.node === t.peer.name ? t.peer : undefined;
      if (n === undefined) throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem token show', reason: `${values.node} is not a node of this pair`, hint: `${t.self.name} or ${t.peer.name}` });
      const a = await callControl(n.url, 'GET', '/v1/auth', undefined, 5000);
      const salt = a.body.tokenSalt;
      if (a.httpStatus !== 200 || typeof salt !== 'string') throw new TandemError({ code: 'TANDEM_ERR_CONTROL_REFUSED', op: `GET ${n.url}/v1/auth`, reason: `HTTP ${a.httpStatus}`, hint: 'this agent may predate token rotation: its token is derived from the pair key alone' });
      process.stdout.write(`${t.creds.tokenWithSalt(salt)}\n`);
      return EXIT.OK;
    }
    // One salt for both nodes: one token for the pair, as before the rotation.
    const salt = crypto.randomBytes(32).toString('hex');
    const outs = await Promise.all([t.self, t.peer].map((n) => askNode(t, n, `/v1/token?salt=${salt}`)));
    const rows = outs.map((o) => ('error' in o ? { node: o.node, ok: false, error: o.error.toJSON() } : { node: o.node, ok: o.answer.body.ok === true, message: String(o.answer.body.message) }));
    const all = rows.every((r) => r.ok);
    if (values.json === true) process.stdout.write(`${JSON.stringify({ ok: all, nodes: rows })}\n`);
    else for (const r of rows) process.stdout.write(`${r.node}: ${'error' in r ? `NOT ROTATED: ${r.error?.message}` : r.message}\n`);
    if (all) return EXIT.OK;
    if (outs.every((o) => 'error' in o && o.error.code === 'TANDEM_ERR_CONTROL_UNREACHABLE')) return EXIT.UNREACHABLE;
    process.stderr.write(`error TANDEM_ERR_ACTION_REFUSED: tandem token rotate: not rotated on every node\nhint: run it again once ${rows.filter((r) => !r.ok).map((r) => r.node).join(' and ')} answers: until then the two nodes take different tokens (tandem commands cope; tools given a token need the one of each node)\n`);
    return EXIT.FAILED;
  },
};
