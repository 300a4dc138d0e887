// Argument parsing for commands (node:util parseArgs), with usage errors as TandemErrors: an
// unknown flag names the closest known one, and a duration must carry its unit (`--timeout 10`
// once meant 10 ms, and the command then blamed the agents for not answering in time).
import { parseArgs } from 'node:util';
import { TandemError } from '../shared/errors.ts';
import { parseDuration } from '../shared/sizes.ts';
import { didYouMean } from '../shared/did-you-mean.ts';

/** One option: `duration` is given as text with a unit and comes back in milliseconds. */
export interface OptionSpec {
  type: 'string' | 'boolean' | 'duration';
  short?: string;
  /** A string option given several times: its values in order. */
  multiple?: boolean;
  /** For durations: the least accepted, in milliseconds (default 1: a zero timeout is a mistake). */
  minMs?: number;
}

export type OptionValues<T extends Record<string, OptionSpec>> = {
  [K in keyof T]?: T[K]['type'] extends 'boolean' ? boolean : T[K]['type'] extends 'duration' ? number : T[K]['multiple'] extends true ? string[] : string;
} & { help?: boolean };

/** Option names that hold a duration: declared as plain strings they would escape the unit check. */
const DURATION_NAME = /(^|-)(timeout|interval|delay|wait|grace|period|after|every|for)$/;

function usageError(command: string, reason: string, hint = `tandem ${command} --help`): TandemError {
  return new TandemError({ code: 'TANDEM_ERR_USAGE', op: `tandem ${command}`, reason, hint });
}

/**
 * Parses a duration flag: "500ms", "10s", "2m", "1h" (also "1.5s"). A bare number is refused:
 * nobody can tell whether `10` meant seconds or milliseconds.
 */
export function parseDurationFlag(command: string, flag: string, text: string, minMs = 1): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) {
    throw usageError(command, `${flag} ${text}: a duration needs a unit`, `write ${flag} ${t}s for seconds or ${flag} ${t}ms for milliseconds (units: ms, s, m, h)`);
  }
  const ms = parseDuration(t);
  if (ms === undefined || t === '') throw usageError(command, `${flag} "${text}" is not a duration`, `e.g. ${flag} 500ms, ${flag} 10s, ${flag} 2m (units: ms, s, m, h)`);
  if (ms < minMs) throw usageError(command, `${flag} ${text} is too short: at least ${minMs} ms`, `e.g. ${flag} 10s`);
  return ms;
}

export function parseCommandArgs<T extends Record<string, OptionSpec>>(
  command: string,
  args: string[],
  options: T,
  opts: { positionals?: boolean } = {},
): { values: OptionValues<T>; positionals: string[] } {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(options)) {
    if (o.type === 'string' && DURATION_NAME.test(name)) {
      // A programming error, caught by the command's first test: every duration flag takes a unit.
      throw new TandemError({ code: 'TANDEM_ERR_INTERNAL', op: `tandem ${command}`, reason: `option --${name} looks like a duration but is declared as a string`, hint: `declare it { type: 'duration' } in console/commands/${command}.ts` });
    }
    spec[name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short === undefined ? {} : { short: o.short }), ...(o.multiple === true && o.type === 'string' ? { multiple: true } : {}) };
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: spec, allowPositionals: opts.positionals === true, strict: true }) as typeof parsed;
  } catch (err) {
    throw explain(command, err as Error & { code?: string }, spec);
  }
  const values: Record<string, unknown> = { ...parsed.values };
  for (const [name, o] of Object.entries(options)) {
    const v = parsed.values[name];
    if (o.type === 'duration' && typeof v === 'string') values[name] = parseDurationFlag(command, `--${name}`, v, o.minMs ?? 1);
  }
  return { values: values as OptionValues<T>, positionals: parsed.positionals };
}

/** parseArgs' message, with the closest known flag when one was mistyped. */
function explain(command: string, err: Error & { code?: string }, spec: Record<string, { type: string; short?: string }>): TandemError {
  const flags = Object.entries(spec).flatMap(([name, o]) => [`--${name}`, ...(o.short === undefined ? [] : [`-${o.short}`])]);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const given = /'([^']+)'/.exec(err.message)?.[1] ?? '';
    const flag = given.split('=')[0]!;
    const near = flag.startsWith('--') ? didYouMean(flag, flags.filter((f) => f.startsWith('--'))) : undefined;
    return usageError(command, `unknown option ${flag}${near === undefined ? '' : `; did you mean ${near}?`}`);
  }
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const given = /'([^']+)'/.exec(err.message)?.[1] ?? '';
    const near = didYouMean(given.replace(/^-+/, ''), Object.keys(spec));
    const reason = `unexpected argument "${given}"${given.endsWith('.yaml') || given.endsWith('.yml') ? `; did you mean -c ${given}?` : near !== undefined && !given.startsWith('-') ? `; did you mean --${near}?` : ''}`;
    return usageError(command, reason);
  }
  return usageError(command, err.message.split('. To specify')[0]!);
}

export function requireOption(command: string, value: string | undefined, flag: string): string {
  if (value === undefined || value === '') {
    throw usageError(command, `${flag} is required`);
  }
  return value;
}
