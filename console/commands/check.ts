// `tandem check`: the preflight checks of an installed node (or of any tandem.yaml), each ok,
// warn or fail with its fix (installer/preflight-checks.ts). Install runs the same checks.
import path from 'node:path';
import { loadConfig } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import { readPairKey } from '../../shared/pair-key.ts';
import { InstallLayout, MODULE_SCHEMA, controlUrl, formatChecks, readManifest, renderModule, runPreflight, type ModuleSpec } from '../../installer/index.ts';
import { parseCommandArgs } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { fetchStatus } from '../control-client.ts';

export const checkCommand: Command = {
  name: 'check',
  summary: 'check this server for Tandem: versions, directories, disk, inotify, ports, peer, clock',
  help: `Usage: tandem check [--root DIR | -c CONFIG] [--json]

Checks this node, each check ok, warn or fail with what to do: Node.js version; running as root;
the protected directories exist and are readable; free disk for the journal (journal.maxBytes);
inotify watches for the protected directories (with the sysctl that raises the limit); the
node's ports are free (or held by its own agent); the peer answers on its channel address; the
peer's clock (its agent's signed presence answer) against this one; the programs the
application modules need; the modules' own rules. tandem install runs the same checks first.

Options:
      --root DIR       check the node installed under DIR (default: the one in /etc/tandem)
  -c, --config CONFIG  check the node of this tandem.yaml instead
      --json           print one JSON object: {"ok": no check failed, "checks": [{id, level, title, detail, fix}]}
  -h, --help           show this help

Exit codes: 0 no check failed (warnings may remain), 1 a check failed, 2 usage error.`,
  async run(args) {
    const { values } = parseCommandArgs('check', args, { root: { type: 'string' }, config: { type: 'string', short: 'c' }, json: { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    if (values.root !== undefined && values.config !== undefined) throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem check', reason: '--root and -c name a node each: give one', hint: 'tandem check --help' });
    const layout = new InstallLayout(values.root === undefined ? '/' : path.resolve(values.root));
    const configPath = values.config ?? layout.path('config');
    const config = loadConfig(configPath);
    // The modules as installed (none known for a hand-written config).
    const manifest = values.config === undefined ? readManifest(layout.path('manifest')) : undefined;
    const modules = (manifest?.modules ?? []).flatMap((m) => {
      const r = MODULE_SCHEMA.safeParse(m);
      return r.success ? [r.data as ModuleSpec] : [];
    });
    let key: Buffer | undefined;
    try {
      key = readPairKey(config.keyFile);
    } catch {
      key = undefined; // the clock is then not measured; the agent reports the key itself
    }
    const self = await fetchStatus(controlUrl(config.self.control), 1000).catch(() => undefined);
    const checks = await runPreflight({
      config,
      mode: 'installed',
      modules,
      rendered: modules.map((m, i) => renderModule(m, { node: config.self.name, index: i + 1, runDir: layout.path('runDir'), nodeBin: process.execPath, under: (p) => layout.under(p) })),
      // Without a manifest the paths are those of the config.
      protectedSystemPaths: config.protect.map((r) => (layout.underRoot && r.path.startsWith(`${layout.root}/`) ? r.path.slice(layout.root.length) : r.path)),
      key,
      agentRunning: self?.node === config.self.name,
    });
    const failed = checks.some((c) => c.level === 'fail');
    if (values.json === true) process.stdout.write(`${JSON.stringify({ ok: !failed, node: config.self.name, checks })}\n`);
    else process.stdout.write(`tandem check: node ${config.self.name} of pair ${config.pair} (${path.resolve(configPath)})\n${formatChecks(checks)}\n${failed ? 'Some checks FAILED: apply each fix above.' : 'No check failed.'}\n`);
    return failed ? EXIT.FAILED : EXIT.OK;
  },
};
