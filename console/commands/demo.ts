import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCommandArgs } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { describePair, initDemoPair, readDemoPair } from '../demo/init-pair.ts';
import { runDemo } from '../demo/run-demo.ts';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run a complete local pair on loopback (or only write it)',
  help: `Usage: tandem demo [--dir DIR] [--init-only]

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
  -h, --help        show this help

Files written: DIR/pair.json (nodes, config paths, control URLs, appUrl), DIR/scripts.log,
and per node DIR/NODE/{tandem.yaml, pair.key, data/, scripts/, state/, agent.log}.`,
  async run(args) {
    const { values } = parseCommandArgs('demo', args, { dir: { type: 'string' }, 'init-only': { type: 'boolean' } });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-demo-'));
    if (values['init-only'] === true) {
      process.stdout.write(`${describePair(await initDemoPair(dir))}\n`);
      return EXIT.OK;
    }
    const pair = readDemoPair(dir) ?? (await initDemoPair(dir));
    return runDemo(pair);
  },
};
