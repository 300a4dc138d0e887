// Builders for data records and helpers that read a tree back, shared by the applier's unit
// and integration tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { hash64 } from '../../../shared/hash.ts';
import type { DataRecord, MetaFields, OwnerFields } from '../../../shared/protocol/index.ts';
import { blockCount, type Manifest } from '../../../agent/manifest/index.ts';

export const ROOT = 'data';

/** Builds records with increasing sequence numbers, all in root `data` unless told. */
export class RecordBuilder {
  readonly records: DataRecord[] = [];
  constructor(private seq = 1, private readonly root = ROOT) {}

  private push<T extends DataRecord>(r: T): T {
    this.records.push(r);
    return r;
  }
  mkdir(p: string, mode = 0o755, extra: MetaFields = {}) {
    return this.push({ op: 'mkdir', seq: this.seq++, root: this.root, path: p, mode, ...extra });
  }
  file(p: string, size: number) {
    return this.push({ op: 'file', seq: this.seq++, root: this.root, path: p, size });
  }
  write(p: string, offset: number, data: Uint8Array | string, badHash = false) {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const hash = hash64(bytes);
    if (badHash) hash[0] = hash[0]! ^ 0xff;
    return this.push({ op: 'write', seq: this.seq++, root: this.root, path: p, offset, data: bytes, hash });
  }
  /** `file` then block-aligned writes of `content`, as capture sends a new file. */
  content(p: string, content: Uint8Array | string, blockSize: number) {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    this.file(p, bytes.length);
    for (let off = 0; off < bytes.length; off += blockSize) this.write(p, off, bytes.subarray(off, Math.min(bytes.length, off + blockSize)));
  }
  meta(p: string, mode: number, mtimeMs: number, extra: MetaFields = {}) {
    return this.push({ op: 'meta', seq: this.seq++, root: this.root, path: p, mode, mtimeMs, ...extra });
  }
  symlink(p: string, target: string, owner: OwnerFields = {}) {
    return this.push({ op: 'symlink', seq: this.seq++, root: this.root, path: p, target, ...owner });
  }
  hardlink(p: string, target: string) {
    return this.push({ op: 'hardlink', seq: this.seq++, root: this.root, path: p, target });
  }
  hole(p: string, offset: number, length: number) {
    return this.push({ op: 'hole', seq: this.seq++, root: this.root, path: p, offset, length });
  }
  unlink(p: string) {
    return this.push({ op: 'unlink', seq: this.seq++, root: this.root, path: p });
  }
  rmdir(p: string) {
    return this.push({ op: 'rmdir', seq: this.seq++, root: this.root, path: p });
  }
  rename(p: string, to: string) {
    return this.push({ op: 'rename', seq: this.seq++, root: this.root, path: p, to });
  }
  syncBegin(id = 's1') {
    return this.push({ op: 'sync-begin', seq: this.seq++, id, baseSeq: 0, bytesTotal: 0 });
  }
  syncEnd(id = 's1') {
    return this.push({ op: 'sync-end', seq: this.seq++, id });
  }
}

export function tmpDir(prefix = 'tandem-apply-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TreeEntry {
  path: string;
  kind: 'file' | 'dir' | 'symlink' | 'other';
  mode?: number;
  size?: number;
  content?: string;
  target?: string;
  mtimeMs?: number;
}

/**
 * Everything below `dir`, without following links. Directory mtimes are left out (creating a
 * child changes them); file mtimes are included when `withFileMtimes`.
 */
export function snapshot(dir: string, withFileMtimes = true): TreeEntry[] {
  const out: TreeEntry[] = [];
  const walk = (rel: string) => {
    const abs = rel === '' ? dir : path.join(dir, rel);
    for (const name of fs.readdirSync(abs).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isSymbolicLink()) out.push({ path: r, kind: 'symlink', target: fs.readlinkSync(path.join(dir, r)) });
      else if (st.isDirectory()) {
        out.push({ path: r, kind: 'dir', mode: st.mode & 0o7777 });
        walk(r);
      } else if (st.isFile()) {
        const e: TreeEntry = { path: r, kind: 'file', mode: st.mode & 0o7777, size: st.size, content: hash64(fs.readFileSync(path.join(dir, r))).toString('hex') };
        if (withFileMtimes) e.mtimeMs = st.mtimeMs;
        out.push(e);
      } else out.push({ path: r, kind: 'other' });
    }
  };
  walk('');
  return out;
}

/**
 * Differences between the manifest of root `root` and the disk under `dir`: the same paths, and
 * for each the same kind, inode, target, size, mtime and block hashes (hashed afresh).
 */
export function manifestDifferences(m: Manifest, root: string, dir: string, blockSize: number): string[] {
  const diffs: string[] = [];
  const onDisk = new Set<string>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(rel === '' ? dir : path.join(dir, rel))) {
      const r = rel === '' ? name : `${rel}/${name}`;
      onDisk.add(r);
      const abs = path.join(dir, r);
      const st = fs.lstatSync(abs);
      const e = m.get(root, r);
      if (e === undefined) {
        diffs.push(`${r}: on disk, not in manifest`);
        if (st.isDirectory()) walk(r);
        continue;
      }
      if (e.ino !== st.ino) diffs.push(`${r}: ino ${e.ino} != ${st.ino}`);
      if (st.isSymbolicLink()) {
        if (e.kind !== 'symlink') diffs.push(`${r}: kind ${e.kind} != symlink`);
        else if (e.target !== fs.readlinkSync(abs)) diffs.push(`${r}: target ${e.target}`);
      } else if (st.isDirectory()) {
        if (e.kind !== 'dir') diffs.push(`${r}: kind ${e.kind} != dir`);
        else if ((e.mode & 0o7777) !== (st.mode & 0o7777)) diffs.push(`${r}: mode ${e.mode.toString(8)} != ${(st.mode & 0o7777).toString(8)}`);
        walk(r);
      } else if (st.isFile()) {
        if (e.kind !== 'file') {
          diffs.push(`${r}: kind ${e.kind} != file`);
          continue;
        }
        if (e.size !== st.size) diffs.push(`${r}: size ${e.size} != ${st.size}`);
        if (e.mtimeMs !== st.mtimeMs) diffs.push(`${r}: mtimeMs ${e.mtimeMs} != ${st.mtimeMs}`);
        if ((e.mode & 0o7777) !== (st.mode & 0o7777)) diffs.push(`${r}: mode ${e.mode.toString(8)} != ${(st.mode & 0o7777).toString(8)}`);
        const data = fs.readFileSync(abs);
        const n = blockCount(data.length, blockSize);
        const fresh = Buffer.alloc(n * 8);
        for (let i = 0; i < n; i++) hash64(data.subarray(i * blockSize, Math.min(data.length, (i + 1) * blockSize))).copy(fresh, i * 8);
        if (!fresh.equals(e.blocks)) diffs.push(`${r}: block hashes differ`);
      }
    }
  };
  walk('');
  for (const [p] of m.entries(root)) if (!onDisk.has(p)) diffs.push(`${p}: in manifest, not on disk`);
  return diffs;
}

/** A logger whose lines are kept (parsed) for assertions. */
export function memoryLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

/** Deterministic pseudo-random bytes (tests must be reproducible). */
export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
