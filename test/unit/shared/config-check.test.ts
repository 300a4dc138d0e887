// Every problem of a tandem.yaml at once, each with where it is written: the operator fixes the
// file in one pass, and the agent refuses to start naming all of them.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { checkConfig, loadConfig } from '../../../shared/config/index.ts';
import { readPairAddresses } from '../../../shared/config/pair-addresses.ts';
import { TandemError } from '../../../shared/errors.ts';
import { MINIMAL_CONFIG, TWO_PROBLEMS, writeConfig } from '../../helpers/config-fixture.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const write = (text: string) => writeConfig(text, dirs);
const HEAD = MINIMAL_CONFIG;

describe('tandem config check', () => {
  it('lists every schema problem with its line and column, and the closest key for an unknown one', () => {
    const file = write(`${HEAD}journal:
  maxByte: 1GiB
heartbeat:
  threshold: five
capture:
  settle: 5 parsecs
`);
    const { problems, config } = checkConfig(file);
    expect(config).toBeUndefined();
    const byKey = Object.fromEntries(problems.map((p) => [p.key, p]));
    expect(Object.keys(byKey).sort()).toEqual(['capture.settle', 'heartbeat.threshold', 'journal.maxByte']);
    expect(byKey['journal.maxByte']).toMatchObject({ line: 10, column: 3, message: 'unknown key "maxByte"; did you mean "maxBytes"?' });
    expect(byKey['heartbeat.threshold']).toMatchObject({ line: 12, column: 14 });
    expect(byKey['capture.settle']).toMatchObject({ line: 14, column: 11 });
    expect(byKey['capture.settle']!.message).toContain('expected a duration');
  });

  it('lists every rule that spans keys, not only the first', () => {
    const file = write(`${HEAD}blockSize: 3000
channel:
  reconnectMin: 5s
  reconnectMax: 1s
heartbeat:
  threshold: 3
  demoteThreshold: 3
`);
    const { problems } = checkConfig(file);
    const byKey = Object.fromEntries(problems.map((p) => [p.key, p]));
    expect(Object.keys(byKey).sort()).toEqual(['blockSize', 'channel.reconnectMax', 'heartbeat.demoteThreshold']);
    expect(byKey.blockSize).toMatchObject({ line: 9, column: 12 });
    expect(byKey.blockSize!.message).toContain('power of two');
    expect(byKey['channel.reconnectMax']).toMatchObject({ line: 12, column: 17 });
    expect(byKey['heartbeat.demoteThreshold']).toMatchObject({ line: 15, column: 20 });
  });

  it('reports YAML syntax errors with their line', () => {
    const file = write(`${HEAD}journal:
  maxBytes: 1GiB
  maxBytes: 2GiB
`);
    const { problems } = checkConfig(file);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ key: '(yaml)', line: 11 });
    expect(problems[0]!.message).toContain('unique');
  });

  it('finds nothing wrong with a good config', () => {
    const { problems, config } = checkConfig(write(HEAD));
    expect(problems).toEqual([]);
    expect(config?.self.name).toBe('alpha');
  });

  it('makes the loader (agent start-up) name every problem too', () => {
    const file = write(TWO_PROBLEMS);
    let err: unknown;
    try {
      loadConfig(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TandemError);
    const e = err as TandemError;
    expect(e.code).toBe('TANDEM_ERR_CONFIG_INVALID');
    expect(e.message).toContain('2 problems');
    expect(e.message).toContain('key "journal.maxByte": unknown key "maxByte"; did you mean "maxBytes"? (line 10, column 3)');
    expect(e.message).toContain('key "heartbeat.threshold"');
    expect((e.details.problems as unknown[]).length).toBe(2);
  });

  it('reads the pair\'s control addresses without the full validator, refusing what it cannot use', () => {
    const a = readPairAddresses(write(HEAD));
    expect(a).toMatchObject({ pair: 'demo', self: { name: 'alpha', control: { host: '127.0.0.1', port: 7101 } }, peer: { name: 'beta', control: { host: '127.0.0.1', port: 7102 } } });
    expect(() => readPairAddresses(write(HEAD.replace('control: "127.0.0.1:7102"', 'control: "nowhere"')))).toThrow(/nodes\.beta\.control/);
    expect(() => readPairAddresses(write(HEAD.replace('node: alpha', 'node: gamma')))).toThrow(/"gamma" is not one of nodes/);
  });
});
