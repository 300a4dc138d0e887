// Argument parsing as an operator meets it: durations need a unit, and a typo gets the closest
// flag or command by name.
import { describe, expect, it } from 'vitest';
import { parseCommandArgs, parseDurationFlag } from '../../../console/args.ts';
import { didYouMean, editDistance } from '../../../shared/did-you-mean.ts';
import { TandemError } from '../../../shared/errors.ts';

function usageError(f: () => unknown): TandemError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(TandemError);
    expect((err as TandemError).code).toBe('TANDEM_ERR_USAGE');
    return err as TandemError;
  }
  throw new Error('expected a usage error');
}

describe('duration flags', () => {
  it('reads every unit into milliseconds', () => {
    expect(parseDurationFlag('x', '--timeout', '500ms')).toBe(500);
    expect(parseDurationFlag('x', '--timeout', '10s')).toBe(10_000);
    expect(parseDurationFlag('x', '--timeout', '1.5s')).toBe(1500);
    expect(parseDurationFlag('x', '--timeout', '2m')).toBe(120_000);
    expect(parseDurationFlag('x', '--timeout', '1h')).toBe(3_600_000);
  });

  it('refuses a bare number, saying how to write seconds or milliseconds', () => {
    const e = usageError(() => parseDurationFlag('switchover', '--timeout', '10'));
    expect(e.reason).toBe('--timeout 10: a duration needs a unit');
    expect(e.hint).toContain('--timeout 10s');
    expect(e.hint).toContain('--timeout 10ms');
  });

  it('refuses what is not a duration, an unknown unit and zero', () => {
    expect(usageError(() => parseDurationFlag('x', '--timeout', 'soon')).reason).toContain('is not a duration');
    expect(usageError(() => parseDurationFlag('x', '--timeout', '10 parsecs')).reason).toContain('is not a duration');
    expect(usageError(() => parseDurationFlag('x', '--timeout', '-5s')).reason).toContain('is not a duration');
    expect(usageError(() => parseDurationFlag('x', '--timeout', '0s')).reason).toContain('too short');
  });

  it('comes back from parseCommandArgs in milliseconds, and a bare number is refused there too', () => {
    const spec = { timeout: { type: 'duration' as const }, json: { type: 'boolean' as const } };
    expect(parseCommandArgs('verify', ['--timeout', '30s', '--json'], spec).values).toMatchObject({ timeout: 30_000, json: true });
    expect(parseCommandArgs('verify', ['--timeout=250ms'], spec).values.timeout).toBe(250);
    expect(usageError(() => parseCommandArgs('verify', ['--timeout', '30'], spec)).reason).toContain('needs a unit');
  });

  it('will not let a command declare a duration flag as a plain string', () => {
    expect(() => parseCommandArgs('failover', [], { timeout: { type: 'string' } })).toThrow(/--timeout looks like a duration/);
    expect(() => parseCommandArgs('events', [], { 'poll-interval': { type: 'string' } })).toThrow(/--poll-interval looks like a duration/);
    expect(parseCommandArgs('x', ['--tag', 'a', '--tag', 'b'], { tag: { type: 'string', multiple: true } }).values.tag).toEqual(['a', 'b']);
  });
});

describe('did you mean', () => {
  it('counts a swap of two neighbours as one edit', () => {
    expect(editDistance('stauts', 'status')).toBe(1);
    expect(editDistance('switchvoer', 'switchover')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('finds the closest command, and nothing for a word that is not close', () => {
    const commands = ['demo', 'agent', 'status', 'switchover', 'resolve', 'verify', 'config', 'help'];
    expect(didYouMean('stauts', commands)).toBe('status');
    expect(didYouMean('swtichover', commands)).toBe('switchover');
    expect(didYouMean('verfy', commands)).toBe('verify');
    expect(didYouMean('conf', commands)).toBe('config');
    expect(didYouMean('banana', commands)).toBeUndefined();
    expect(didYouMean('x', commands)).toBeUndefined();
  });

  it('names the closest flag for a mistyped one', () => {
    const spec = { config: { type: 'string' as const, short: 'c' }, json: { type: 'boolean' as const }, timeout: { type: 'duration' as const } };
    expect(usageError(() => parseCommandArgs('status', ['--jsno'], spec)).reason).toBe('unknown option --jsno; did you mean --json?');
    expect(usageError(() => parseCommandArgs('status', ['--confg', 'a.yaml'], spec)).reason).toBe('unknown option --confg; did you mean --config?');
    expect(usageError(() => parseCommandArgs('status', ['--timout=5s'], spec)).reason).toBe('unknown option --timout; did you mean --timeout?');
    expect(usageError(() => parseCommandArgs('status', ['--zebra'], spec)).reason).toBe('unknown option --zebra');
  });

  it('reads a config path given without -c as the mistake it is', () => {
    const spec = { config: { type: 'string' as const, short: 'c' }, json: { type: 'boolean' as const } };
    expect(usageError(() => parseCommandArgs('status', ['/etc/tandem/tandem.yaml'], spec)).reason).toContain('did you mean -c /etc/tandem/tandem.yaml?');
    expect(usageError(() => parseCommandArgs('status', ['json'], spec)).reason).toContain('did you mean --json?');
  });
});
