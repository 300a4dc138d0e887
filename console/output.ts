// How commands report errors to a person: one line "error CODE: op: cause" and the hint.
import { TandemError } from '../shared/errors.ts';

export function printError(err: unknown): void {
  if (err instanceof TandemError) {
    process.stderr.write(`error ${err.code}: ${err.message}\n`);
    if (err.hint !== undefined) process.stderr.write(`hint: ${err.hint}\n`);
    return;
  }
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
}
