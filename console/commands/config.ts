// `tandem config check FILE`: every problem of a tandem.yaml at once, each with its line and
// column, before an agent is started on it (the agent refuses the same problems at start-up).
import { checkConfig } from '../../shared/config/index.ts';
import { TandemError } from '../../shared/errors.ts';
import { didYouMean } from '../../shared/did-you-mean.ts';
import { parseCommandArgs } from '../args.ts';
import { EXIT, type Command } from '../command.ts';

const SUBCOMMANDS = ['check'];

export const configCommand: Command = {
  name: 'config',
  summary: 'check a tandem.yaml: every error, with its line and column',
  help: `Usage: tandem config check FILE [--json]

Reads FILE as an agent would at start-up and lists every problem, not only the first: YAML
syntax, unknown keys (with the closest known key), wrong types and values, and the rules that
span several keys (journal sizes, ports, nested roots, thresholds). One line per problem:
FILE:LINE:COLUMN: key: message. Nothing is started or changed; the pair key is not read.

Options:
      --json     print one JSON object: {"ok", "file", "problems": [{key, message, line, column}]}
  -h, --help     show this help

Exit codes: 0 no problem, 1 problems found (or FILE unreadable), 2 usage error.`,
  async run(args) {
    const { values, positionals } = parseCommandArgs('config', args, { json: { type: 'boolean' } }, { positionals: true });
    if (values.help === true) {
      process.stdout.write(`${this.help}\n`);
      return EXIT.OK;
    }
    const [sub, file, ...extra] = positionals;
    if (sub !== 'check') {
      const near = sub === undefined ? undefined : didYouMean(sub, SUBCOMMANDS);
      throw new TandemError({
        code: 'TANDEM_ERR_USAGE',
        op: 'tandem config',
        reason: sub === undefined ? 'a subcommand is required: check' : `unknown subcommand "${sub}"${near === undefined ? '' : `; did you mean "${near}"?`}`,
        hint: 'tandem config check FILE',
      });
    }
    if (file === undefined || extra.length > 0) {
      throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem config check', reason: file === undefined ? 'FILE is required' : `one FILE only, got ${positionals.length - 1}`, hint: 'tandem config check /etc/tandem/tandem.yaml' });
    }
    const check = checkConfig(file);
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify({ ok: check.problems.length === 0, file: check.file, problems: check.problems })}\n`);
    } else if (check.problems.length === 0) {
      const c = check.config!;
      process.stdout.write(`${check.file}: ok (pair ${c.pair}, node ${c.self.name}, peer ${c.peer.name}, ${c.protect.length} protected root${c.protect.length === 1 ? '' : 's'})\n`);
    } else {
      for (const p of check.problems) {
        const where = p.line === undefined ? '' : `${p.line}:${p.column}:`;
        process.stdout.write(`${check.file}:${where} ${p.key === '(yaml)' ? '' : `${p.key}: `}${p.message}\n`);
      }
      process.stdout.write(`${check.problems.length} problem${check.problems.length === 1 ? '' : 's'}\n`);
    }
    return check.problems.length === 0 ? EXIT.OK : EXIT.FAILED;
  },
};
