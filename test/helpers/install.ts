// Helpers for the installer's tests: the example answers of docs/install.md (as outside checks
// read them), file trees compared by path, mode and content, and cleanup of installed roots.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PROJECT } from './pair.ts';
import { testPortRange } from './ports.ts';
import { isBrowserUnsafePort } from '../../shared/unsafe-ports.ts';

/** The ```yaml block after the first line containing `marker` in docs/install.md. */
export function docsExample(marker: 'answers: primary' | 'answers: secondary'): string {
  const lines = fs.readFileSync(path.join(PROJECT, 'docs/install.md'), 'utf8').split('\n');
  const at = lines.findIndex((l) => l.includes(marker));
  if (at < 0) throw new Error(`docs/install.md has no line containing "${marker}"`);
  const open = lines.findIndex((l, i) => i > at && l.trim() === '```yaml');
  const close = lines.findIndex((l, i) => i > open && l.trim() === '```');
  return `${lines.slice(open + 1, close).join('\n')}\n`;
}

export function docsExampleDocument(marker: 'answers: primary' | 'answers: secondary'): Record<string, any> {
  return parseYaml(docsExample(marker)) as Record<string, any>;
}

/** path → "dir 755" | "file 644 <sha256>" | "link <target>", for every entry under root. */
export function snapshotTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(path.join(root, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.set(r, `link ${fs.readlinkSync(path.join(root, r))}`);
      else if (st.isDirectory()) {
        out.set(r, `dir ${mode}`);
        walk(r);
      } else out.set(r, `file ${mode} ${crypto.createHash('sha256').update(fs.readFileSync(path.join(root, r))).digest('hex')}`);
    }
  };
  walk('');
  return out;
}

/** Differences between two snapshots, ignoring paths under (or equal to) `except`. */
export function treeChanges(before: Map<string, string>, after: Map<string, string>, except: string[] = []): string[] {
  const skip = (p: string) => except.some((e) => p === e || p.startsWith(`${e}/`));
  const out: string[] = [];
  for (const [k, v] of before) if (!skip(k) && after.get(k) !== v) out.push(after.has(k) ? `changed ${k}: ${v} → ${after.get(k)}` : `removed ${k}`);
  for (const [k, v] of after) if (!skip(k) && !before.has(k)) out.push(`added ${k} (${v})`);
  return out;
}

/** Free TCP ports on 127.0.0.1, in this worker's slice (./ports.ts). */
export async function freePorts(n: number): Promise<number[]> {
  const [lo, hi] = testPortRange();
  const ports: number[] = [];
  while (ports.length < n) {
    const p = lo + crypto.randomInt(hi - lo + 1);
    if (ports.includes(p) || isBrowserUnsafePort(p)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) ports.push(p);
  }
  return ports;
}

/** SIGKILL for an agent an install started under `root` (its pid file), if it still runs. */
export function killInstalledAgent(root: string): void {
  try {
    const pid = Number(fs.readFileSync(path.join(root, 'run/tandem/agent.pid'), 'utf8').trim());
    if (pid > 1) process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file, or already gone
  }
}
