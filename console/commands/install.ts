// `tandem install primary|secondary`: puts Tandem on a server (installer/). This file reads the
// arguments, gets the answers (a file, or questions at a terminal), and prints; the installer
// does the work.
import path from 'node:path';
import { TandemError } from '../../shared/errors.ts';
import { parseDuration } from '../../shared/sizes.ts';
import {
  InstallLayout,
  askPackCode,
  askPrimaryAnswers,
  installPrimary,
  installSecondary,
  lineAsker,
  parsePrimaryAnswers,
  parseSecondaryAnswers,
  readAnswersDocument,
  type CheckResult,
  type InstallIo,
} from '../../installer/index.ts';
import { parseCommandArgs } from '../args.ts';
import { EXIT, type Command } from '../command.ts';
import { fetchStatus } from '../control-client.ts';

const DEFAULT_WAIT = '1h';

const HELP = `Usage: tandem install primary [--answers FILE] [--pack PACK] [--root DIR] [--no-start] [--json]
       tandem install secondary --from PACK [--answers FILE] [--key FILE] [--root DIR] [--no-start]
                                [--timeout DURATION] [--json]

Installs Tandem on this server (docs/install.md). Both run the checks of tandem check first and
write nothing when one fails.

primary: writes /etc/tandem/tandem.yaml, the pair key (/etc/tandem/pair.key, 0600; the control
API's token derives from it), the start/stop/check scripts composed from the application
modules of the answers (and fence.sh when a fence command is given), the systemd unit
tandem.service (enabled), starts the agent, and writes the clone pack for the secondary with
the pack code that opens it (printed once, unless the answers give packCode).

secondary: opens the clone pack with its code (packCode in the answers, TANDEM_PACK_CODE, or
typed when asked) or with a copy of the pair key (--key), writes the same for this node,
starts the agent and shows the initial synchronisation (bytes, rate, ETA) until the pair is in
sync.

Options:
      --answers FILE     the answers (docs/install.md lists every key). Without it, in a terminal,
                         the installer asks (primary), or asks only for the pack code (secondary)
      --pack PACK        primary: where to write the clone pack (default ./tandem-PAIR.pack)
      --from PACK        secondary: the clone pack copied from the primary (required)
      --key FILE         secondary: open the pack with a copy of the pair key instead of the code
      --root DIR         install under DIR: /etc, /var/lib, /var/log, /run, the systemd directory
                         and the protected directories all lie under DIR (tests, chroots); the
                         agent then runs as a process, not under systemd
      --no-start         write everything, start nothing
      --timeout DURATION secondary: how long to wait for the pair to be in sync (default ${DEFAULT_WAIT})
      --interactive      ask the questions even without a terminal (answers read line by line)
      --json             print one JSON object at the end: {"ok", "node", "checks", …}
  -h, --help             show this help

Exit codes: 0 installed (and, secondary, in sync), 1 a check failed or the install did not
complete (nothing is left behind half written), 2 usage error.`;

function io(json: boolean, collect: { checks?: CheckResult[] }): InstallIo {
  const tty = process.stderr.isTTY === true;
  let lastProgress = '';
  let lastPrinted = 0;
  return {
    // With --json, stdout carries the one object: the human lines go to stderr.
    out: (text) => {
      // A progress line in a terminal has no newline yet: end it before the next text.
      if (tty && lastProgress !== '') process.stderr.write('\n');
      lastProgress = '';
      (json ? process.stderr : process.stdout).write(`${text}\n`);
    },
    progress: (line) => {
      if (tty) {
        process.stderr.write(`\r${line.padEnd(lastProgress.length)}`);
        lastProgress = line;
      } else if (line !== lastProgress && Date.now() - lastPrinted >= 2000) {
        process.stderr.write(`${line}\n`);
        lastProgress = line;
        lastPrinted = Date.now();
      }
    },
    status: (url, timeoutMs) => fetchStatus(url, timeoutMs),
    checks: (c) => {
      collect.checks = c;
    },
  };
}

export const installCommand: Command = {
  name: 'install',
  summary: 'install the primary, or the secondary from the primary\'s clone pack',
  help: HELP,
  async run(args) {
    const [which, ...rest] = args;
    if (which === undefined || which === '--help' || which === '-h') {
      process.stdout.write(`${this.help}\n`);
      return which === undefined ? EXIT.USAGE : EXIT.OK;
    }
    if (which !== 'primary' && which !== 'secondary') {
      throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem install', reason: `"${which}" is neither primary nor secondary`, hint: 'tandem install primary, then tandem install secondary --from PACK on the other server' });
    }
    const { values } = parseCommandArgs(`install ${which}`, rest, {
      answers: { type: 'string' },
      pack: { type: 'string' },
      from: { type: 'string' },
      key: { type: 'string' },
      root: { type: 'string' },
      'no-start': { type: 'boolean' },
      timeout: { type: 'duration' },
      interactive: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const usage = (reason: string, hint = `tandem install ${which} --help`) => new TandemError({ code: 'TANDEM_ERR_USAGE', op: `tandem install ${which}`, reason, hint });
    const layout = new InstallLayout(values.root === undefined ? '/' : path.resolve(values.root));
    const json = values.json === true;
    const collect: { checks?: CheckResult[] } = {};
    const out = io(json, collect);
    const interactive = values.interactive === true || process.stdin.isTTY === true;
    const report = (r: Record<string, unknown>) => {
      if (json) process.stdout.write(`${JSON.stringify({ ok: true, ...r, checks: collect.checks ?? [] })}\n`);
    };
    try {
      if (which === 'primary') {
        for (const k of ['from', 'key', 'timeout'] as const) if (values[k] !== undefined) throw usage(`--${k} is for install secondary`);
        let doc: Record<string, unknown>;
        let file = values.answers;
        if (file !== undefined) doc = readAnswersDocument(file);
        else if (interactive) {
          const q = lineAsker(process.stdin, process.stderr);
          try {
            doc = await askPrimaryAnswers(q, process.stderr);
          } finally {
            q.close();
          }
          file = 'the answers given';
        } else throw usage('--answers FILE is needed when not at a terminal', 'write the answers (docs/install.md) and pass --answers FILE, or run in a terminal to be asked');
        const answers = parsePrimaryAnswers(doc, file);
        const r = await installPrimary({ layout, answers, packFile: values.pack ?? `tandem-${answers.pair}.pack`, start: values['no-start'] !== true, io: out });
        report({ node: answers.node, role: 'primary', config: r.plan.configPath, pack: r.packFile, ...(r.packCode === undefined ? {} : { packCode: r.packCode }), started: r.started ?? null });
        return EXIT.OK;
      }
      if (values.pack !== undefined) throw usage('--pack is for install primary; the secondary reads one with --from');
      if (values.from === undefined) throw usage('--from PACK is required: the clone pack install primary wrote');
      const waitMs = values.timeout ?? parseDuration(DEFAULT_WAIT)!;
      const answers = parseSecondaryAnswers(values.answers === undefined ? {} : readAnswersDocument(values.answers), values.answers ?? 'answers');
      if (values.key !== undefined) answers.pairKey = path.resolve(values.key);
      const r = await installSecondary({
        layout,
        packFile: path.resolve(values.from),
        answers,
        envCode: process.env.TANDEM_PACK_CODE,
        ...(interactive
          ? {
              askCode: async (h) => {
                const q = lineAsker(process.stdin, process.stderr);
                try {
                  return await askPackCode(q, h.from);
                } finally {
                  q.close();
                }
              },
            }
          : {}),
        start: values['no-start'] !== true,
        waitMs,
        io: out,
      });
      report({ node: r.plan.input.node, role: 'secondary', config: r.plan.configPath, started: r.started ?? null, syncMs: r.syncMs ?? null });
      return EXIT.OK;
    } catch (err) {
      if (json) {
        const e = TandemError.wrap(err, { code: 'TANDEM_ERR_INTERNAL', op: `tandem install ${which}` });
        process.stdout.write(`${JSON.stringify({ ok: false, ...e.toJSON(), checks: collect.checks ?? [] })}\n`);
      }
      throw err;
    }
  },
};
