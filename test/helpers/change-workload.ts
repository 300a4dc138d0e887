// Changes whose size is known exactly, for the catch-up test and benchmark: a base tree written
// identically into several directories, then a plan of block-aligned writes (in-place
// overwrites, appends, new files) that never touch the same bytes twice, so the bytes the plan
// changed are the sum of its writes and any byte sent beyond that is overhead.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface BaseTree {
  files: number;
  /** Blocks per file; every file is files × blocks × blockSize bytes of random data. */
  blocks: number;
  blockSize: number;
  /** Files per sub-directory. */
  perDir?: number;
  /** Modification time given to every file, so copies written at different moments look alike to rsync. */
  mtime?: Date;
}

export const baseName = (i: number, perDir = 500) => `base/d${String(Math.floor(i / perDir)).padStart(3, '0')}/f${String(i).padStart(6, '0')}.bin`;
export const newName = (i: number, perDir = 500) => `new/d${String(Math.floor(i / perDir)).padStart(3, '0')}/n${String(i).padStart(6, '0')}.bin`;

/** Writes the same base tree into every directory in `dirs`; returns the bytes of one copy. */
export function writeBaseTree(dirs: string[], t: BaseTree): number {
  const size = t.blocks * t.blockSize;
  for (let i = 0; i < t.files; i++) {
    const rel = baseName(i, t.perDir);
    const data = crypto.randomBytes(size);
    for (const d of dirs) {
      const abs = path.join(d, rel);
      if (i % (t.perDir ?? 500) === 0) fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, data);
      if (t.mtime !== undefined) fs.utimesSync(abs, t.mtime, t.mtime);
    }
  }
  return t.files * size;
}

export interface Write {
  rel: string;
  offset: number;
  length: number;
}

export interface ChangePlanSpec {
  base: BaseTree;
  /** Existing files changed: each gets `overwrites` blocks overwritten in place, then `appends` blocks appended. */
  existing: { files: number; overwrites: number; appends: number };
  /** New files, each written as `blocks` appended blocks. */
  created: { files: number; blocks: number };
  /** Blocks per write (1: every write is one change of one block). */
  blocksPerWrite?: number;
}

/**
 * The writes of a plan, interleaved across files (each file's writes are spread over the whole
 * run, as a busy application's would be). No two writes overlap.
 */
export function planWrites(spec: ChangePlanSpec): Write[] {
  const bs = spec.base.blockSize;
  const per = spec.blocksPerWrite ?? 1;
  const lists: Write[][] = [];
  // Existing files are spread evenly over the base tree, so they sit among untouched neighbours.
  const stride = Math.max(1, Math.floor(spec.base.files / Math.max(1, spec.existing.files)));
  for (let k = 0; k < spec.existing.files; k++) {
    const rel = baseName((k * stride) % spec.base.files, spec.base.perDir);
    const l: Write[] = [];
    const ow = Math.min(spec.existing.overwrites, spec.base.blocks);
    for (let b = 0; b < ow; b += per) l.push({ rel, offset: b * bs, length: Math.min(per, ow - b) * bs });
    const end = spec.base.blocks * bs;
    for (let a = 0; a < spec.existing.appends; a += per) l.push({ rel, offset: end + a * bs, length: Math.min(per, spec.existing.appends - a) * bs });
    lists.push(l);
  }
  for (let k = 0; k < spec.created.files; k++) {
    const rel = newName(k, spec.base.perDir);
    const l: Write[] = [];
    for (let b = 0; b < spec.created.blocks; b += per) l.push({ rel, offset: b * bs, length: Math.min(per, spec.created.blocks - b) * bs });
    lists.push(l);
  }
  const out: Write[] = [];
  const longest = Math.max(0, ...lists.map((l) => l.length));
  for (let i = 0; i < longest; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

export interface ChangeReport {
  changes: number;
  bytesChanged: number;
  filesTouched: number;
  durationMs: number;
}

/** Runs the writes into `dir`, evenly paced over `durationMs` (0: as fast as possible). */
export async function runWrites(dir: string, writes: Write[], durationMs: number): Promise<ChangeReport> {
  const t0 = Date.now();
  const touched = new Set<string>();
  let bytes = 0;
  const slices = Math.max(1, Math.min(writes.length, Math.round(durationMs / 50)));
  const perSlice = Math.ceil(writes.length / slices);
  for (let s = 0; s * perSlice < writes.length; s++) {
    for (const w of writes.slice(s * perSlice, (s + 1) * perSlice)) {
      const abs = path.join(dir, w.rel);
      if (!touched.has(w.rel)) fs.mkdirSync(path.dirname(abs), { recursive: true });
      const fd = fs.openSync(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT);
      try {
        fs.writeSync(fd, crypto.randomBytes(w.length), 0, w.length, w.offset);
      } finally {
        fs.closeSync(fd);
      }
      touched.add(w.rel);
      bytes += w.length;
    }
    const due = t0 + ((s + 1) * durationMs) / slices;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return { changes: writes.length, bytesChanged: bytes, filesTouched: touched.size, durationMs: Date.now() - t0 };
}
