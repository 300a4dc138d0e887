// The answers of `tandem install`: what the operator decides (names, addresses, what to protect,
// which applications and identity the scripts move, how to fence), from --answers FILE.yaml, or
// asked one by one in a terminal. docs/install.md documents every key; a test fails when one is
// missing there. An answers file is as trusted as tandem.yaml (root writes both), but it is
// validated to the letter: nothing reaches a generated script without passing these rules.
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { hostPort, name, target } from '../shared/config/schema.ts';
import { TandemError } from '../shared/errors.ts';
import { MODULE_SCHEMA, type ModuleSpec } from './modules/index.ts';

/** An absolute path with no "..", no NUL and no newline: it is written into scripts and YAML. */
export const absPath = z
  .string()
  .min(2)
  .max(4096)
  .regex(/^\/[^\0\n\r]*$/, 'expected an absolute path such as /srv/data')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."');

/** Shell commands the operator gives (fence, DNS update, web server…): one line, bounded. */
export const command = z.string().min(1).max(4096).regex(/^[^\0\n\r]*$/, 'expected a command on one line');

/** A pack code as install primary prints it, or a passphrase the operator chose (both nodes' answers). */
export const packCode = z.string().min(16, 'a pack code has at least 16 characters').max(256);

const nodeAnswers = z.strictObject({
  /** Where this node's replication channel listens: an address on the dedicated link. */
  channel: hostPort,
  /** The control API (CLI, console): keep it on the loopback or a management network. */
  control: hostPort.default('127.0.0.1:7701'),
  /** Presence answers on the public network; without it the peer cannot fail over automatically. */
  public: hostPort.optional(),
});

const protectItem = z.union([
  absPath,
  z.strictObject({
    path: absPath,
    name: name.optional(),
    exclude: z.array(z.string().min(1).max(1024)).max(1000).optional(),
  }),
]);

export const primaryAnswersSchema = z.strictObject({
  pair: name,
  node: name,
  nodes: z.record(name, nodeAnswers),
  protect: z.array(protectItem).min(1, 'at least one protected directory is needed').max(64),
  modules: z.array(MODULE_SCHEMA).max(32).default([]),
  publicTargets: z.array(target).max(64).default([]),
  fence: command.optional(),
  packCode: packCode.optional(),
  /** More tandem.yaml keys for both nodes (heartbeat, failover, journal…), validated as tandem.yaml. */
  settings: z.record(z.string(), z.unknown()).default({}),
});

export const secondaryAnswersSchema = z.strictObject({
  node: name.optional(),
  packCode: packCode.optional(),
  /** A copy of the pair key file, instead of the pack code. */
  pairKey: absPath.optional(),
  modules: z.array(MODULE_SCHEMA).max(32).optional(),
  publicTargets: z.array(target).max(64).optional(),
  fence: command.optional(),
});

export type PrimaryAnswers = z.output<typeof primaryAnswersSchema>;
export type SecondaryAnswers = z.output<typeof secondaryAnswersSchema>;

export interface ProtectedDir {
  name: string;
  /** As the real system names it (no --root prefix). */
  path: string;
  exclude: string[];
}

/** Largest answers file read: a real one is a few hundred bytes. */
const MAX_ANSWERS_BYTES = 256 * 1024;

const HINT = 'docs/install.md lists every key of the answers file';

function invalid(file: string, key: string, reason: string): TandemError {
  return new TandemError({ code: 'TANDEM_ERR_USAGE', op: `read answers ${file}`, reason: `key "${key}": ${reason}`, hint: HINT, details: { key } });
}

/** The YAML document of an answers file (an empty file is an empty document). */
export function readAnswersDocument(file: string): Record<string, unknown> {
  const abs = path.resolve(file);
  let text: string;
  try {
    const st = fs.statSync(abs);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_ANSWERS_BYTES) throw new Error(`larger than ${MAX_ANSWERS_BYTES} bytes`);
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw TandemError.wrap(err, { code: 'TANDEM_ERR_USAGE', op: `read answers ${abs}`, hint: 'pass an existing YAML file with --answers' });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: `read answers ${abs}`, reason: `not valid YAML: ${(err as Error).message.split('\n')[0]}`, hint: HINT });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: `read answers ${abs}`, reason: 'expected a map of keys', hint: HINT });
  return doc as Record<string, unknown>;
}

function parseWith<T extends z.ZodType>(schema: T, doc: unknown, file: string): z.output<T> {
  const r = schema.safeParse(doc);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = issue.path.map(String).join('.') || '(top level)';
  const reason = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
  throw invalid(file, key, reason);
}

/** Validates a primary's answers, with the rules that span keys. */
export function parsePrimaryAnswers(doc: unknown, file: string): PrimaryAnswers {
  const a = parseWith(primaryAnswersSchema, doc, file);
  const names = Object.keys(a.nodes);
  if (names.length !== 2) throw invalid(file, 'nodes', `a pair has exactly two nodes, found ${names.length}`);
  if (!names.includes(a.node)) throw invalid(file, 'node', `"${a.node}" is not one of nodes (${names.join(', ')})`);
  checkModules(a.modules, names, file, 'modules');
  protectedDirs(a.protect, file);
  return a;
}

export function parseSecondaryAnswers(doc: unknown, file: string): SecondaryAnswers {
  return parseWith(secondaryAnswersSchema, doc, file);
}

/** Module rules that need the pair: a DNS module names an address for both nodes. */
export function checkModules(modules: ModuleSpec[], nodes: string[], file: string, key: string): void {
  modules.forEach((m, i) => {
    if (m.module === 'dns') {
      for (const n of nodes) if (m.addresses[n] === undefined) throw invalid(file, `${key}.${i}.addresses`, `no address for node ${n}`);
    }
  });
}

/** The protected directories with their names (from the answers, or the last path component). */
export function protectedDirs(items: PrimaryAnswers['protect'], file = 'answers'): ProtectedDir[] {
  const out: ProtectedDir[] = [];
  const used = new Set<string>();
  items.forEach((item, i) => {
    const p = path.posix.normalize(typeof item === 'string' ? item : item.path).replace(/\/+$/, '') || '/';
    if (p === '/') throw invalid(file, `protect.${i}`, 'the whole file system cannot be protected');
    let n = typeof item === 'string' || item.name === undefined ? nameFromPath(p) : item.name;
    if (typeof item !== 'string' && item.name !== undefined && used.has(n)) throw invalid(file, `protect.${i}.name`, `"${n}" is used twice`);
    for (let k = 2; used.has(n); k++) n = `${nameFromPath(p).slice(0, 28)}-${k}`;
    used.add(n);
    for (const o of out) {
      if (inside(p, o.path) || inside(o.path, p) || p === o.path) throw invalid(file, `protect.${i}`, `${p} and ${o.path} overlap; protected directories must not nest`);
    }
    out.push({ name: n, path: p, exclude: typeof item === 'string' ? [] : (item.exclude ?? []) });
  });
  return out;
}

/** "/var/lib/postgresql/15/main" → "main"; a name the config accepts ([a-z][a-z0-9-]*). */
function nameFromPath(p: string): string {
  const base = path.posix.basename(p).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').slice(0, 32).replace(/-+$/, '');
  return base === '' ? 'data' : base;
}

function inside(child: string, parent: string): boolean {
  const rel = path.posix.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.posix.isAbsolute(rel);
}
