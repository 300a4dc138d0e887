// The installer's questions, for an operator at a terminal without an answers file: each with a
// default in brackets, validated as typed (a wrong answer is said why and asked again), and the
// result is an answers document like the one --answers reads, printed at the end so the next
// install can be scripted. Lines come from any stream, so the questions are tested without a
// terminal (--interactive).
import os from 'node:os';
import readline from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';
import { stringify as stringifyYaml } from 'yaml';
import type { z } from 'zod';
import { hostPort, name, target } from '../shared/config/schema.ts';
import { TandemError } from '../shared/errors.ts';
import { absPath, command, packCode } from './answers.ts';
import { dnsModule } from './modules/dns-update.ts';
import { systemdModule } from './modules/systemd-service.ts';
import { vipModule } from './modules/virtual-ip.ts';
import { webModule } from './modules/web-server.ts';

export interface Asker {
  /** Asks until the answer passes `schema` (the default when the answer is empty). */
  ask<T>(question: string, schema: z.ZodType<T>, def?: string): Promise<T>;
  close(): void;
}

export function lineAsker(input: Readable, output: Writable): Asker {
  const rl = readline.createInterface({ input, output, terminal: (input as { isTTY?: boolean }).isTTY === true });
  const lines: string[] = [];
  let ended = false;
  const waiting: ((l: string | undefined) => void)[] = [];
  rl.on('line', (l) => {
    const w = waiting.shift();
    if (w !== undefined) w(l);
    else lines.push(l);
  });
  rl.on('close', () => {
    ended = true;
    for (const w of waiting.splice(0)) w(undefined);
  });
  const next = (): Promise<string | undefined> => (lines.length > 0 ? Promise.resolve(lines.shift()) : ended ? Promise.resolve(undefined) : new Promise((r) => waiting.push(r)));
  return {
    async ask<T>(question: string, schema: z.ZodType<T>, def?: string): Promise<T> {
      for (;;) {
        output.write(`${question}${def === undefined || def === '' ? '' : ` [${def}]`}: `);
        const raw = await next();
        if (raw === undefined) {
          output.write('\n');
          throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem install', reason: 'the input ended before every question was answered', hint: 'answer every question, or use --answers FILE' });
        }
        const text = raw.trim() === '' ? (def ?? '') : raw.trim();
        const r = schema.safeParse(text);
        if (r.success) return r.data;
        output.write(`  not valid: ${r.error.issues[0]?.message ?? 'try again'}\n`);
      }
    },
    close: () => rl.close(),
  };
}

/** A comma-separated list of `item`s (none: "-" or empty), at least `min` of them. */
const list = <T extends z.ZodType>(item: T, min = 0) => ({ safeParse: (s: string) => parseList(s, item, min) }) as unknown as z.ZodType<z.output<T>[]>;

function parseList<T extends z.ZodType>(s: string, item: T, min: number): { success: true; data: z.output<T>[] } | { success: false; error: { issues: { message: string }[] } } {
  const parts = (s.trim() === '-' ? '' : s)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  const out: z.output<T>[] = [];
  for (const p of parts) {
    const r = item.safeParse(p);
    if (!r.success) return { success: false, error: { issues: [{ message: `${p}: ${r.error.issues[0]?.message ?? 'not valid'}` }] } };
    out.push(r.data);
  }
  if (out.length < min) return { success: false, error: { issues: [{ message: `name at least ${min}` }] } };
  return { success: true, data: out };
}

const optional = <T extends z.ZodType>(s: T) => ({ safeParse: (v: string) => (v === '' || v === '-' ? { success: true, data: undefined } : s.safeParse(v)) }) as unknown as z.ZodType<z.output<T> | undefined>;
const yesNo = { safeParse: (v: string) => (/^(y|yes)$/i.test(v) ? { success: true, data: true } : /^(n|no)$/i.test(v) ? { success: true, data: false } : { success: false, error: { issues: [{ message: 'answer y or n' }] } }) } as unknown as z.ZodType<boolean>;

function firstAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

function hostName(): string {
  const h = os.hostname().split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^[^a-z]+/, '');
  return h === '' ? 'alpha' : h.slice(0, 32);
}

const MODULE_MENU = ['vip: a virtual IP address that moves with the active role', 'systemd: a systemd service', 'web: a web server (systemd unit or a command), checked over HTTP', 'postgresql: a PostgreSQL server on a protected data directory', 'dns: a DNS name pointed at the active node by your update command', 'command: your own start, stop and check commands'];

/** Asks for a primary's answers; returns the document (as --answers would read it). */
export async function askPrimaryAnswers(q: Asker, out: Writable): Promise<Record<string, unknown>> {
  out.write('Installing the primary node of a Tandem pair. Press Enter to take the [default].\n\n');
  const pair = await q.ask('Name of the pair', name, 'pair');
  const node = await q.ask('Name of this server (node)', name, hostName());
  const peer = await q.ask('Name of the other server', name.refine((v) => v !== node, 'must differ from this node'), node === 'beta' ? 'alpha' : 'beta');
  const here = firstAddress();
  const channel = await q.ask(`Replication channel address of ${node} (host:port on the dedicated link)`, hostPort, `${here}:7700`);
  const peerChannel = await q.ask(`Replication channel address of ${peer}`, hostPort);
  const pub = await q.ask(`Public address of ${node} for presence probes (host:port clients' network; - for none)`, optional(hostPort), `${here}:7702`);
  const peerPub = await q.ask(`Public address of ${peer} for presence probes (- for none)`, optional(hostPort));
  const control = await q.ask('Control API address (loopback)', hostPort, '127.0.0.1:7701');
  const protect = await q.ask('Directories to protect (absolute paths, comma-separated)', list(absPath, 1));
  out.write(`\nApplication modules (start runs them in the order you give, stop in reverse):\n${MODULE_MENU.map((m, i) => `  ${i + 1}. ${m}`).join('\n')}\n`);
  const picks = await q.ask('Modules, by number in start order (e.g. 4,3,1; - for none)', list(numberIn(MODULE_MENU.length)), '-');
  const modules: Record<string, unknown>[] = [];
  for (const k of picks) modules.push(await askModule(q, k, node, peer));
  const targets = await q.ask('Public check targets (tcp://host:port, http://…, ping://host; comma-separated; - for none)', list(target), '-');
  const fence = await q.ask(`Fence command that powers off or isolates ${peer} (exit 0 only when done; - for none)`, optional(command), '-');
  const nodes: Record<string, Record<string, string>> = {
    [node]: { channel, control, ...(pub === undefined ? {} : { public: pub }) },
    [peer]: { channel: peerChannel, control, ...(peerPub === undefined ? {} : { public: peerPub }) },
  };
  const doc: Record<string, unknown> = { pair, node, nodes, protect, modules, publicTargets: targets, ...(fence === undefined ? {} : { fence }) };
  out.write(`\nThe answers (save them to install the same way again with --answers FILE):\n${stringifyYaml(doc)}\n`);
  if (!(await q.ask('Install with these answers?', yesNo, 'y'))) throw new TandemError({ code: 'TANDEM_ERR_USAGE', op: 'tandem install primary', reason: 'cancelled; nothing was written', hint: 'run it again, or use --answers FILE' });
  return doc;
}

function numberIn(max: number): z.ZodType<number> {
  return { safeParse: (v: string) => (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= max ? { success: true, data: Number(v) } : { success: false, error: { issues: [{ message: `a number from 1 to ${max}` }] } }) } as unknown as z.ZodType<number>;
}

/** One module's questions; the whole answers document is validated again afterwards. */
async function askModule(q: Asker, k: number, node: string, peer: string): Promise<Record<string, unknown>> {
  let m: Record<string, unknown>;
  switch (k) {
    case 1:
      m = { module: 'vip', address: await q.ask('  virtual IP with prefix (e.g. 192.0.2.10/24)', vipModule.shape.address), ...opt('interface', await q.ask('  interface (- to find it from the subnet)', optional(vipModule.shape.interface.unwrap()), '-')) };
      break;
    case 2:
      m = { module: 'systemd', unit: await q.ask('  unit (e.g. nginx.service)', systemdModule.shape.unit) };
      break;
    case 3: {
      const unit = await q.ask('  systemd unit of the web server (- to give a command instead)', optional(systemdModule.shape.unit), '-');
      const cmd = unit === undefined ? await q.ask('  command that runs the server in the foreground', command) : undefined;
      m = { module: 'web', ...opt('unit', unit), ...opt('command', cmd), url: await q.ask('  health check URL on this node', webModule.shape.url, 'http://127.0.0.1/') };
      break;
    }
    case 4:
      m = { module: 'postgresql', dataDir: await q.ask('  PostgreSQL data directory (inside a protected directory)', absPath), ...opt('unit', await q.ask('  systemd unit (- to run pg_ctl as postgres)', optional(systemdModule.shape.unit), '-')) };
      break;
    case 5: {
      const dnsName = await q.ask('  DNS name', dnsModule.shape.name);
      const ip = dnsModule.shape.addresses.valueType;
      m = { module: 'dns', name: dnsName, addresses: { [node]: await q.ask(`  address of ${dnsName} while ${node} is active`, ip), [peer]: await q.ask(`  address while ${peer} is active`, ip) }, command: await q.ask('  update command (gets TANDEM_DNS_NAME, TANDEM_DNS_ADDRESS, TANDEM_DNS_TTL)', command) };
      break;
    }
    default:
      m = { module: 'command', start: await q.ask('  start command', command), stop: await q.ask('  stop command', command), ...opt('check', await q.ask('  check command (- for none)', optional(command), '-')) };
  }
  return m;
}

function opt(key: string, v: unknown): Record<string, unknown> {
  return v === undefined ? {} : { [key]: v };
}

/** The secondary's only question: the pack code. */
export async function askPackCode(q: Asker, from: string): Promise<string> {
  return q.ask(`Pack code printed by the install of ${from}`, packCode);
}
