// `tandem uninstall`: removes what tandem install put on this server (installer/uninstall.ts).
import path from 'node:path';
import { TandemError } from '../../shared/errors.ts';
import { InstallLayout, uninstall } from '../../installer/index.ts';
import { parseCommandArgs } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { fetchStatus } from '../control-client.ts';

export const uninstallCommand: Command = {
  name: 'uninstall',
  summary: 'stop the agent and remove everything tandem install created (protected data stays)',
  help: `Usage: tandem uninstall [--root DIR] [--force] [--json]

Stops this server's agent, runs its stop script (the applications and the public identity are
released here), then removes every file, link and directory the install created, as listed in
/var/lib/tandem/install-manifest.json, newest first: the config, the pair key, the scripts, the
unit and its enable link, the state, logs and pid files. The protected directories and their
data stay, even those the install created; so does anything the install did not create (a
directory that still holds such files is kept and named).

Uninstall the secondary first if the pair goes away; uninstalling the active node of a running
pair makes the peer take over after the failover threshold, like any lost active.

Options:
      --root DIR   the --root the install used
      --force      go on when the stop script fails (the identity may stay on this server)
      --json       print one JSON object: {"ok", "node", "removed", "kept"}
  -h, --help       show this help

Exit codes: 0 removed, 1 nothing installed here, or the stop script failed (nothing removed),
2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('uninstall', args, { root: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const json = values.json === true;
    try {
      const r = await uninstall({
        layout: new InstallLayout(values.root === undefined ? '/' : path.resolve(values.root)),
        force: values.force === true,
        io: { out: (t) => (json ? process.stderr : process.stdout).write(`${t}\n`), progress: (l) => process.stderr.write(`${l}\n`), status: (u, t) => fetchStatus(u, t) },
      });
      if (json) process.stdout.write(`${JSON.stringify({ ok: true, node: r.node, agentStopped: r.agentStopped, stopScript: r.stopScript, removed: r.removed, kept: r.kept })}\n`);
      return EXIT.OK;
    } catch (err) {
      if (json) process.stdout.write(`${JSON.stringify({ ok: false, ...TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: 'tandem uninstall' }).toJSON() })}\n`);
      throw err;
    }
  },
};
