import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TandemError } from '../../../shared/errors.ts';
import { parsePrimaryAnswers, primaryAnswersSchema, protectedDirs, secondaryAnswersSchema } from '../../../installer/answers.ts';
import { MODULE_SCHEMA } from '../../../installer/modules/index.ts';
import { PROJECT } from '../../helpers/pair.ts';
import { refusal } from '../../helpers/refusal.ts';

const base = {
  pair: 'shop',
  node: 'alpha',
  nodes: { alpha: { channel: '10.0.0.1:7700' }, beta: { channel: '10.0.0.2:7700' } },
  protect: ['/srv/data'],
};

function refusalOfDoc(doc: unknown): TandemError {
  return refusal(() => parsePrimaryAnswers(doc, 'a.yaml'));
}

/** Every key of an object schema, nested maps as "a.b", records as "a.<name>.b". */
function keys(schema: z.ZodType, prefix = ''): string[] {
  const def = (schema as any)._zod.def;
  switch (def.type) {
    case 'object':
      return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([k, v]) => [prefix + k, ...keys(v, `${prefix}${k}.`)]);
    case 'record':
      return keys(def.valueType, `${prefix}<name>.`);
    case 'default':
    case 'prefault':
    case 'optional':
      return keys(def.innerType, prefix);
    default:
      return [];
  }
}

describe('install answers', () => {
  it('fill defaults: the control address, no modules, no targets', () => {
    const a = parsePrimaryAnswers(base, 'a.yaml');
    expect(a.nodes.alpha).toEqual({ channel: '10.0.0.1:7700', control: '127.0.0.1:7701' });
    expect([a.modules, a.publicTargets, a.settings]).toEqual([[], [], {}]);
  });

  it('name protected directories after their last component, uniquely, and refuse nesting', () => {
    expect(protectedDirs(['/srv/data', '/var/lib/postgresql/15/main', '/backup/data']).map((d) => d.name)).toEqual(['data', 'main', 'data-2']);
    expect(refusalOfDoc({ ...base, protect: ['/srv', '/srv/data'] }).reason).toMatch(/overlap/);
    expect(refusalOfDoc({ ...base, protect: ['//'] }).reason).toMatch(/whole file system/);
  });

  it('refuse, naming the key: an unknown key, a relative or climbing path, a third node, a bad module field', () => {
    expect(refusalOfDoc({ ...base, colour: 'red' }).reason).toMatch(/unknown key\(s\) "colour"/);
    expect(refusalOfDoc({ ...base, protect: ['srv/data'] }).details.key).toBe('protect.0');
    expect(refusalOfDoc({ ...base, protect: ['/srv/../etc'] }).reason).toMatch(/"\.\."/);
    expect(refusalOfDoc({ ...base, nodes: { ...base.nodes, gamma: { channel: '10.0.0.3:7700' } } }).reason).toMatch(/exactly two nodes/);
    expect(refusalOfDoc({ ...base, node: 'gamma' }).reason).toMatch(/not one of nodes/);
    expect(refusalOfDoc({ ...base, modules: [{ module: 'vip', address: '192.0.2.10' }] }).details.key).toBe('modules.0.address');
    expect(refusalOfDoc({ ...base, modules: [{ module: 'vip', address: '192.0.2.10/24', interface: 'eth0; rm -rf /' }] }).details.key).toBe('modules.0.interface');
    expect(refusalOfDoc({ ...base, modules: [{ module: 'web', url: 'http://x/', unit: 'a.service', command: 'b' }] }).reason).toMatch(/either unit/);
    expect(refusalOfDoc({ ...base, modules: [{ module: 'dns', name: 'shop.example.com', addresses: { alpha: '192.0.2.11' }, command: 'true' }] }).reason).toMatch(/no address for node beta/);
    expect(refusalOfDoc({ ...base, fence: 'line one\nline two' }).details.key).toBe('fence');
    expect(refusalOfDoc({ ...base, packCode: 'short' }).details.key).toBe('packCode');
  });

  it('are all documented in docs/install.md', () => {
    const doc = fs.readFileSync(path.join(PROJECT, 'docs/install.md'), 'utf8');
    const all = [...keys(primaryAnswersSchema), ...keys(secondaryAnswersSchema)];
    expect(all.length).toBeGreaterThan(15);
    expect([...new Set(all)].filter((k) => !doc.includes(`\`${k}\``))).toEqual([]);
    // And every module with its keys.
    const moduleKeys = MODULE_SCHEMA.options.flatMap((o: any) => Object.keys(o.shape ?? o._zod.def.shape).filter((k) => k !== 'module').map((k) => [o.shape.module.value, k]));
    const table = doc.slice(doc.indexOf('## Application modules'));
    expect(moduleKeys.filter(([m, k]) => !new RegExp(`\\| \`${m}\` \\|[^\\n]*\`${k}\``).test(table))).toEqual([]);
  });
});
