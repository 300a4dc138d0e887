// The few keys a read-only command needs (the pair's name, both nodes and their control
// addresses), read without the full schema: `tandem status` must start in a few tens of
// milliseconds, and the whole validator costs more than that to load. Anything it cannot
// read is refused with the key, as the full loader would; the agent validates everything.
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { TandemError } from '../errors.ts';

export interface PairNode {
  name: string;
  control: { host: string; port: number };
}

export interface PairAddresses {
  /** Absolute path of the config read. */
  file: string;
  pair: string;
  self: PairNode;
  peer: PairNode;
}

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export function splitHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  const host = hp.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(hp.slice(i + 1)) };
}

export function readPairAddresses(file: string): PairAddresses {
  const abs = path.resolve(file);
  const op = `load config ${abs}`;
  const hint = `tandem config check ${abs} lists every problem of the file`;
  let doc: unknown;
  try {
    doc = parseYaml(fs.readFileSync(abs, 'utf8'));
  } catch (err) {
    const yamlError = (err as Error).name.startsWith('YAML');
    throw TandemError.wrap(err, {
      code: 'TANDEM_ERR_CONFIG_READ',
      op,
      ...(yamlError ? { reason: `not valid YAML: ${(err as Error).message.split('\n')[0]}` } : {}),
      hint: yamlError ? hint : 'pass the path of an existing tandem.yaml with -c',
    });
  }
  const bad = (key: string, reason: string) => new TandemError({ code: 'TANDEM_ERR_CONFIG_INVALID', op, reason: `key "${key}": ${reason}`, hint, details: { key } });
  const c = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  if (typeof c.pair !== 'string') throw bad('pair', 'expected the pair\'s name');
  if (typeof c.node !== 'string') throw bad('node', 'expected this node\'s name');
  const nodes = (typeof c.nodes === 'object' && c.nodes !== null ? c.nodes : {}) as Record<string, unknown>;
  const names = Object.keys(nodes);
  if (names.length !== 2) throw bad('nodes', `a pair has exactly two nodes, found ${names.length}`);
  if (!names.includes(c.node)) throw bad('node', `"${c.node}" is not one of nodes (${names.join(', ')})`);
  const read = (name: string): PairNode => {
    const control = (nodes[name] as Record<string, unknown> | null)?.control;
    const m = typeof control === 'string' ? HOST_PORT.exec(control) : null;
    const port = Number(m?.[2]);
    if (m === null || port < 1 || port > 65535) throw bad(`nodes.${name}.control`, 'expected host:port, e.g. 127.0.0.1:7701');
    return { name, control: splitHostPort(control as string) };
  };
  return { file: abs, pair: c.pair, self: read(c.node), peer: read(names.find((n) => n !== c.node)!) };
}
