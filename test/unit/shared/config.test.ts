import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../../shared/config/index.ts';
import { configSchema } from '../../../shared/config/schema.ts';
import { TandemError } from '../../../shared/errors.ts';
import { PROJECT } from '../../helpers/pair.ts';
import { refusal } from '../../helpers/refusal.ts';

const base = {
  pair: 'p',
  node: 'alpha',
  nodes: { alpha: { channel: '127.0.0.1:1', control: '127.0.0.1:2' }, beta: { channel: '127.0.0.1:3', control: '127.0.0.1:4' } },
  protect: [{ name: 'data', path: './data' }],
};

function refusalOfDoc(doc: unknown): TandemError {
  return refusal(() => parseConfig(doc, '/etc/tandem/tandem.yaml'));
}

/** Every key path of the schema: "journal.maxBytes", "nodes.<name>.channel", "protect[].name"… */
function keyPaths(schema: z.ZodType, prefix = ''): string[] {
  const def = (schema as any)._zod.def;
  switch (def.type) {
    case 'object':
      return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([k, v]) => {
        const p = prefix === '' ? k : `${prefix}.${k}`;
        const inner = keyPaths(v, p);
        return inner.length > 0 ? inner : [p];
      });
    case 'record':
      return keyPaths(def.valueType, `${prefix}.<name>`);
    case 'array':
      return keyPaths(def.element, `${prefix}[]`);
    case 'default':
    case 'prefault':
    case 'optional':
      return keyPaths(def.innerType, prefix);
    case 'pipe':
      return keyPaths(def.in, prefix);
    default:
      return [];
  }
}

describe('configuration', () => {
  it('fills every default and resolves paths against the file', () => {
    const c = parseConfig(base, '/etc/tandem/tandem.yaml');
    expect(c.blockSize).toBe(65536);
    expect(c.journal.maxBytes).toBe(1024 ** 3);
    expect(c.capture.settle).toBe(50);
    // Points every 500 ms: the data at risk stays under a second at p99 (bench:points).
    expect(c.capture.pointInterval).toBe(500);
    expect(c.channel.encryption).toBe('tls-psk');
    expect(c.protect[0]!.path).toBe('/etc/tandem/data');
    expect(c.stateDir).toBe('/etc/tandem/state');
    expect(c.peer.name).toBe('beta');
  });

  it('refuses a wrong type, naming the key and what was expected', () => {
    const e = refusalOfDoc({ ...base, journal: { maxBytes: true } });
    expect(e.code).toBe('TANDEM_ERR_CONFIG_INVALID');
    expect(e.message).toContain('"journal.maxBytes"');
    expect(e.message).toContain('expected a size');
    expect(refusalOfDoc({ ...base, heartbeat: { threshold: 'five' } }).message).toContain('"heartbeat.threshold"');
    expect(refusalOfDoc({ ...base, capture: { settle: '5 parsecs' } }).message).toContain('expected a duration');
  });

  it('reads channel.compression as a zlib level, off by default', () => {
    expect(parseConfig(base, '/etc/tandem/tandem.yaml').channel.compression).toBe(0);
    expect(parseConfig({ ...base, channel: { compression: 'off' } }, '/etc/tandem/tandem.yaml').channel.compression).toBe(0);
    expect(parseConfig({ ...base, channel: { compression: false } }, '/etc/tandem/tandem.yaml').channel.compression).toBe(0);
    expect(parseConfig({ ...base, channel: { compression: 6 } }, '/etc/tandem/tandem.yaml').channel.compression).toBe(6);
    expect(refusalOfDoc({ ...base, channel: { compression: 10 } }).message).toContain('"channel.compression"');
    expect(refusalOfDoc({ ...base, channel: { compression: 'fast' } }).message).toContain('"channel.compression"');
  });

  it('refuses unknown keys, so a typo is never silently ignored', () => {
    expect(refusalOfDoc({ ...base, journal: { maxByte: '1GiB' } }).message).toContain('"journal.maxByte"');
  });

  it('refuses values that do not fit together', () => {
    expect(refusalOfDoc({ ...base, blockSize: '3000' }).message).toContain('power of two');
    expect(refusalOfDoc({ ...base, node: 'gamma' }).message).toContain('"node"');
    expect(refusalOfDoc({ ...base, stateDir: './data/state' }).message).toContain('"stateDir"');
    expect(refusalOfDoc({ ...base, protect: [{ name: 'a', path: './x' }, { name: 'b', path: './x/y' }] }).message).toContain('must not nest');
    expect(refusalOfDoc({ ...base, channel: { maxFrameBytes: '4MiB' } }).message).toContain('"channel.maxFrameBytes"');
    expect(refusalOfDoc({ ...base, journal: { maxBytes: '64MiB' } }).message).toContain('"journal.segmentBytes"');
    // A point is a file-system snapshot and three btrfs runs: a 1 ms interval would spin on them.
    expect(refusalOfDoc({ ...base, capture: { pointInterval: '10ms' } }).message).toContain('"capture.pointInterval"');
    expect(parseConfig({ ...base, capture: { pointInterval: '100ms' } }, '/etc/tandem/tandem.yaml').capture.pointInterval).toBe(100);
  });

  it('documents every key in docs/configuration.md', () => {
    const doc = fs.readFileSync(path.join(PROJECT, 'docs/configuration.md'), 'utf8');
    const keys = keyPaths(configSchema);
    expect(keys.length).toBeGreaterThan(25);
    expect(keys).toContain('nodes.<name>.channel');
    expect(keys).toContain('protect[].exclude');
    const missing = keys.filter((k) => !doc.includes(`\`${k}\``));
    expect(missing).toEqual([]);
  });
});
