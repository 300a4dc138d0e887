// How commands report errors to a person: one line "error CODE: op: cause" and the hint; an
// error that carries several problems (a config) lists them one per line.
import { TandemError } from '../shared/errors.ts';

export function printError(err: unknown): void {
  if (err instanceof TandemError) {
    const problems = err.details.problems;
    if (Array.isArray(problems) && problems.length > 1) {
      process.stderr.write(`error ${err.code}: ${err.op}: ${problems.length} problems\n`);
      for (const p of problems as { key: string; message: string; line?: number; column?: number }[]) {
        process.stderr.write(`  ${p.line === undefined ? '' : `line ${p.line}, column ${p.column}: `}${p.key === '(yaml)' ? '' : `${p.key}: `}${p.message}\n`);
      }
    } else process.stderr.write(`error ${err.code}: ${err.message}\n`);
    if (err.hint !== undefined) process.stderr.write(`hint: ${err.hint}\n`);
    return;
  }
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
}
