// The disk's own reference for (a): no Tandem, the same writer and poller, and this process in
// between, which mirrors each new file of one directory tree into another on the same file
// system with the least a durable copy needs: inotify (fs.watch) says which file changed, the
// file is read, written into the mirror and fsynced, and so is its directory. Two ways:
//
// - `each`: one file at a time, each written, fsynced and its directory fsynced before the next
//   (what a simple mirroring tool does);
// - `group`: every file that changed since the last round is written, then all of them and their
//   directories are fsynced together, in parallel (group commit: what the file system can do at
//   best with a durable point per round).
//
// A file is visible to the poller once written (before its fsync), as on Tandem's passive, whose
// durable point also follows the write. Talks to the parent over IPC: {start} in, {ready} and
// {result} out.
import fs from 'node:fs';
import path from 'node:path';

export type MirrorMode = 'each' | 'group';

export interface MirrorStart {
  type: 'start';
  src: string;
  dst: string;
  dirCount: number;
  mode: MirrorMode;
}

export interface MirrorResult {
  type: 'result';
  copies: number;
  fsyncs: number;
  rounds: number;
  cpuUserMs: number;
  cpuSystemMs: number;
}

function fsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

async function fsyncPath(p: string): Promise<void> {
  const fd = fs.openSync(p, 'r');
  try {
    await fsync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function run(cfg: MirrorStart): void {
  const pending = new Map<string, { dir: string; name: string }>();
  let copies = 0;
  let fsyncs = 0;
  let rounds = 0;
  let busy = false;
  const cpu0 = process.cpuUsage();

  /** Copies one file's current content; returns its descriptor in the mirror, still open. */
  const copy = (dir: string, name: string): number | undefined => {
    let data: Buffer;
    try {
      data = fs.readFileSync(path.join(cfg.src, dir, name));
    } catch {
      return undefined;
    }
    const fd = fs.openSync(path.join(cfg.dst, dir, name), 'w');
    fs.writeSync(fd, data);
    copies++;
    return fd;
  };

  const drain = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      while (pending.size > 0) {
        rounds++;
        const todo = cfg.mode === 'each' ? [pending.values().next().value!] : [...pending.values()];
        for (const t of todo) pending.delete(`${t.dir}/${t.name}`);
        const fds: number[] = [];
        const dirs = new Set<string>();
        for (const t of todo) {
          const fd = copy(t.dir, t.name);
          if (fd === undefined) continue;
          fds.push(fd);
          dirs.add(t.dir);
        }
        await Promise.all([...fds.map((fd) => fsync(fd)), ...[...dirs].map((d) => fsyncPath(path.join(cfg.dst, d)))]);
        fsyncs += fds.length + dirs.size;
        for (const fd of fds) fs.closeSync(fd);
      }
    } finally {
      busy = false;
    }
  };

  const watchers = Array.from({ length: cfg.dirCount }, (_, d) => {
    const dir = `d${d}`;
    fs.mkdirSync(path.join(cfg.dst, dir), { recursive: true });
    return fs.watch(path.join(cfg.src, dir), (_event, name) => {
      if (name === null) return;
      pending.set(`${dir}/${name.toString()}`, { dir, name: name.toString() });
      void drain();
    });
  });

  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'stop') return;
    for (const w of watchers) w.close();
    const cpu = process.cpuUsage(cpu0);
    const result: MirrorResult = { type: 'result', copies, fsyncs, rounds, cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000 };
    process.send!(result, () => process.exit(0));
  });
  process.send!({ type: 'ready' });
}

process.once('message', (m: MirrorStart) => run(m));
process.on('disconnect', () => process.exit(0));
