// Argument parsing for commands (node:util parseArgs), with usage errors as TandemErrors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TandemError } from '../shared/errors.ts';

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(command: string, args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
  } catch (err) {
    throw new TandemError({
      code: 'TANDEM_ERR_USAGE',
      op: `tandem ${command}`,
      reason: (err as Error).message,
      hint: `tandem ${command} --help`,
    });
  }
}

export function requireOption(command: string, value: string | undefined, flag: string): string {
  if (value === undefined || value === '') {
    throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: `tandem ${command}`, reason: `${flag} is required`, hint: `tandem ${command} --help` });
  }
  return value;
}
