import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCommandArgs } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { TandemError } from '../../shared/errors.ts';
import { describePair, initDemoPair, parsePortRange, readDemoPair } from '../demo/init-pair.ts';
import { runDemo } from '../demo/run-demo.ts';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run a complete local pair on loopback (or only write it)',
  help: `Usage: tandem demo [--dir DIR] [--init-only] [--ports LO-HI]

Writes a demo pair (alpha active, beta passive) and runs it on the loopback interface: two
agents, and the demo web application on a virtual address, started by the active node's
start script. It prints the link of the pair's web console first: watch the pair there (a
status line is also printed whenever the pair changes). Edit files in alpha/data and they
appear in beta/data. Kill the active agent (its pid is printed) and the page keeps working from
the other node; the demo starts the killed agent again after 15 s and it rejoins as passive.
Ctrl-C stops everything, also under a pipe (npm start | tee log).

Options:
      --dir DIR     where the pair lives (default: a new temporary directory). If DIR already
                    holds a pair (DIR/pair.json), that pair is run again.
      --init-only   only write the pair into DIR and print how to start each agent
      --ports LO-HI choose every port the new pair listens on (both agents' channel, control
                    and public ports, the demo application's) from LO-HI, at least 7 ports
                    (default: free ports outside the kernel's ephemeral range, and the
                    application on 8080 when it is free)
  -h, --help        show this help

Files written: DIR/pair.json (nodes, config paths, control URLs, appUrl), DIR/scripts.log,
and per node DIR/NODE/{tandem.yaml, pair.key, data/, scripts/, state/, agent.log}.`,
  async run(args) {
    const { values } = parseCommandArgs('demo', args, { dir: { type: 'string' }, 'init-only': { type: 'boolean' }, ports: { type: 'string' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    // Checked before anything is written: a bad range leaves no directory behind.
    const portRange = values.ports === undefined ? undefined : parsePortRange(values.ports);
    const existing = values.dir === undefined ? undefined : readDemoPair(values.dir);
    if (existing !== undefined && portRange !== undefined) {
      throw new TandemError({
        code: 'TANDEM_ERR_USAGE',
        op: `tandem demo --dir ${existing.dir} --ports ${values.ports}`,
        reason: 'DIR already holds a pair, with its ports chosen when it was written',
        hint: `run it without --ports, or give --ports with a new DIR`,
      });
    }
    const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-demo-'));
    const init = () => initDemoPair(dir, portRange === undefined ? {} : { portRange });
    if (values['init-only'] === true) {
      process.stdout.write(`${describePair(await init())}\n`);
      return EXIT.OK;
    }
    const pair = existing ?? (await init());
    return runDemo(pair);
  },
};
