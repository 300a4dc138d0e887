// The `tandem` command line: one file per command under commands/, all talking to agents only
// through their control API (or running one). It must never touch an agent's state directly.
import { TandemError } from '../shared/errors.ts';
import { EXIT, type Command } from './command.ts';
import { agentCommand } from './commands/agent.ts';
import { demoCommand } from './commands/demo.ts';
import { statusCommand } from './commands/status.ts';
import { switchoverCommand } from './commands/switchover.ts';
import { resolveCommand } from './commands/resolve.ts';
import { verifyCommand } from './commands/verify.ts';
import { checkCommand } from './commands/check.ts';
import { installCommand } from './commands/install.ts';
import { uninstallCommand } from './commands/uninstall.ts';
import { printError } from './output.ts';
import { PROTOCOL_MIN, PROTOCOL_VERSION, TANDEM_VERSION } from '../shared/version.ts';

const COMMANDS: Command[] = [demoCommand, agentCommand, statusCommand, switchoverCommand, resolveCommand, verifyCommand, checkCommand, installCommand, uninstallCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: tandem COMMAND [options]

Tandem keeps a standby server ready to take over from an active one.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}
  ${'help'.padEnd(width)}  show this help, or a command's: tandem help COMMAND

Every command takes --help. tandem --version prints the release and protocol. The manual is in docs/ (start with docs/README.md).
`;
}

/** "tandem 0.1.0 (protocol 2, speaks 1 to 2; node v20.20.2)": what a bug report needs. */
export function versionLine(): string {
  return `tandem ${TANDEM_VERSION} (protocol ${PROTOCOL_VERSION}, speaks ${PROTOCOL_MIN} to ${PROTOCOL_VERSION}; node ${process.version})`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`${versionLine()}\n`);
    return EXIT.OK;
  }
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const target = COMMANDS.find((c) => c.name === rest[0]);
    process.stdout.write(target === undefined ? usage() : `${target.help}\n`);
    return EXIT.OK;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    printError(new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem', reason: `unknown command "${name}"`, hint: 'tandem help' }));
    return EXIT.USAGE;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    printError(err);
    if (err instanceof TandemError) {
      if (err.code === 'TANDEM_ERR_USAGE') return EXIT.USAGE;
      if (err.code === 'TANDEM_ERR_CONTROL_UNREACHABLE') return EXIT.UNREACHABLE;
    }
    return EXIT.FAILED;
  }
}
