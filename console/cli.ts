// The `tandem` command line: one file per command under commands/, all talking to agents only
// through their control API (or running one). It must never touch an agent's state directly.
// Start-up cost matters (an operator's shell, a monitoring probe on the server it protects):
// this file loads nothing but the registry, and each command loads only what it uses.
import { TandemError } from '../shared/errors.ts';
import { EXIT } from './command.ts';
import { COMMANDS } from './command-registry.ts';
import { didYouMean } from '../shared/did-you-mean.ts';
import { printError } from './output.ts';

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: tandem COMMAND [options]

Tandem keeps a standby server ready to take over from an active one.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}
  ${'help'.padEnd(width)}  show this help, or a command's: tandem help COMMAND

Every command takes --help. Durations take a unit: 500ms, 10s, 5m, 1h.
The manual is in docs/ (start with docs/README.md).
`;
}

function unknownCommand(name: string): TandemError {
  const near = didYouMean(name, [...COMMANDS.map((c) => c.name), 'help']);
  return new TandemError({
    code: 'TANDEM_ERR_USAGE',
    op: 'tandem',
    reason: `unknown command "${name}"${near === undefined ? '' : `; did you mean "${near}"?`}`,
    hint: near === undefined ? 'tandem help lists the commands' : `tandem ${near} --help`,
  });
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      if (rest[0] === undefined) {
        process.stdout.write(usage());
        return EXIT.OK;
      }
      const target = COMMANDS.find((c) => c.name === rest[0]);
      if (target === undefined) throw unknownCommand(rest[0]);
      process.stdout.write(`${(await target.load()).help}\n`);
      return EXIT.OK;
    }
    const entry = COMMANDS.find((c) => c.name === name);
    if (entry === undefined) throw unknownCommand(name);
    return await (await entry.load()).run(rest);
  } catch (err) {
    printError(err);
    if (err instanceof TandemError) {
      if (err.code === 'TANDEM_ERR_USAGE') return EXIT.USAGE;
      if (err.code === 'TANDEM_ERR_CONTROL_UNREACHABLE') return EXIT.UNREACHABLE;
    }
    return EXIT.FAILED;
  }
}
