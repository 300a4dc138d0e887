// A reproducible file workload for replication tests: creates, modifies (in place, appends,
// truncations, mode changes), renames (files and a directory), deletes, symlinks, in bursts.
import fs from 'node:fs';
import path from 'node:path';

/** A small deterministic PRNG (mulberry32), so a failing run can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Workload {
  readonly files: string[] = [];
  private n = 0;
  constructor(
    readonly root: string,
    private readonly rand: () => number,
  ) {}

  private pick(): string | undefined {
    if (this.files.length === 0) return undefined;
    return this.files[Math.floor(this.rand() * this.files.length)];
  }

  private bytes(max: number): Buffer {
    const len = Math.floor(this.rand() * max);
    if (len < 4) return Buffer.alloc(len, 7);
    const b = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i += 4) b.writeUInt32LE((this.rand() * 0xffffffff) >>> 0, Math.min(i, Math.max(0, len - 4)));
    return b;
  }

  create(count: number, maxBytes = 150_000): void {
    for (let i = 0; i < count; i++) {
      const dir = `d${Math.floor(this.rand() * 20)}`;
      fs.mkdirSync(path.join(this.root, dir), { recursive: true });
      const rel = `${dir}/f${this.n++}.bin`;
      fs.writeFileSync(path.join(this.root, rel), this.bytes(maxBytes));
      this.files.push(rel);
    }
  }

  modify(count: number): void {
    for (let i = 0; i < count; i++) {
      const rel = this.pick();
      if (rel === undefined) return;
      const abs = path.join(this.root, rel);
      const kind = this.rand();
      if (kind < 0.4) {
        const size = fs.statSync(abs).size;
        const fd = fs.openSync(abs, 'r+');
        fs.writeSync(fd, this.bytes(5000), 0, undefined, Math.floor(this.rand() * (size + 1)));
        fs.closeSync(fd);
      } else if (kind < 0.7) fs.appendFileSync(abs, this.bytes(20_000));
      else if (kind < 0.85) fs.truncateSync(abs, Math.floor(this.rand() * fs.statSync(abs).size));
      else fs.chmodSync(abs, this.rand() < 0.5 ? 0o600 : 0o755);
    }
  }

  rename(count: number): void {
    for (let i = 0; i < count; i++) {
      const rel = this.pick();
      if (rel === undefined) return;
      const to = `d${Math.floor(this.rand() * 20)}/r${this.n++}.bin`;
      fs.mkdirSync(path.join(this.root, path.dirname(to)), { recursive: true });
      fs.renameSync(path.join(this.root, rel), path.join(this.root, to));
      this.files[this.files.indexOf(rel)] = to;
    }
  }

  remove(count: number): void {
    for (let i = 0; i < count; i++) {
      const rel = this.pick();
      if (rel === undefined) return;
      fs.rmSync(path.join(this.root, rel));
      this.files.splice(this.files.indexOf(rel), 1);
    }
  }

  /** Renames a whole directory (the files in it move with it). */
  renameDir(from: string, to: string): void {
    if (!fs.existsSync(path.join(this.root, from))) return;
    fs.renameSync(path.join(this.root, from), path.join(this.root, to));
    for (let i = 0; i < this.files.length; i++) if (this.files[i]!.startsWith(`${from}/`)) this.files[i] = `${to}${this.files[i]!.slice(from.length)}`;
  }

  symlinks(): void {
    fs.mkdirSync(path.join(this.root, 'links'), { recursive: true });
    fs.symlinkSync('../d1', path.join(this.root, 'links/to-dir'));
    fs.symlinkSync('/etc/hostname', path.join(this.root, 'links/outside'));
    fs.symlinkSync('missing-target', path.join(this.root, 'links/dangling'));
  }

  /** 200 appends in about 10 ms to one file: a watcher reports them late and coalesced. */
  burstAppend(rel = 'burst.log', appends = 200): number {
    const abs = path.join(this.root, rel);
    const fd = fs.openSync(abs, 'a');
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < appends; i++) fs.writeSync(fd, `append ${i} ${'x'.repeat(40)}\n`);
    fs.closeSync(fd);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  }
}
