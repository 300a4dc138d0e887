// A small btrfs (or ext4) file system of a test's own: a sparse image file, a loop device, a
// mount point, named with the test run's pid so that parallel runs never meet; and subvolumes
// in it. Every one made is tracked and `cleanupLoops()` (afterEach) unmounts, detaches and
// deletes it, whatever the test left mounted below (snapshots included).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { findBtrfs } from '../../agent/points/index.ts';

export interface LoopFs {
  /** The mount point. */
  dir: string;
  device: string;
  image: string;
  type: 'btrfs' | 'ext4';
}

const made: LoopFs[] = [];
let counter = 0;

/** Why the btrfs tests cannot run here (undefined: they can). */
export function btrfsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the tests do not run as root';
  if (findBtrfs() === undefined || spawnSync('mkfs.btrfs', ['--version']).status !== 0) return 'btrfs-progs is not installed (apt-get install btrfs-progs)';
  if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('btrfs')) return 'this kernel has no btrfs';
  if (!fs.existsSync('/dev/loop-control')) return 'no loop devices';
  return undefined;
}

/** Makes, formats and mounts a file system on a new loop device. */
export function makeLoopFs(opts: { type?: 'btrfs' | 'ext4'; sizeMiB?: number; tag?: string } = {}): LoopFs {
  const type = opts.type ?? 'btrfs';
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `tandem-loop-${process.pid}-${counter++}-${opts.tag ?? type}-`));
  const image = path.join(base, 'image');
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, (opts.sizeMiB ?? 512) * 1024 * 1024);
  const device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
  const lfs: LoopFs = { dir, device, image, type };
  made.push(lfs);
  if (type === 'btrfs') execFileSync('mkfs.btrfs', ['-q', '-f', device], { stdio: 'ignore' });
  else execFileSync('mkfs.ext4', ['-q', '-F', device], { stdio: 'ignore' });
  execFileSync('mount', [device, dir]);
  fs.chmodSync(dir, 0o755);
  return lfs;
}

/** A new subvolume `name` at the top of a btrfs loop file system; its path. */
export function makeSubvolume(lfs: LoopFs, name: string): string {
  const p = path.join(lfs.dir, name);
  execFileSync('btrfs', ['subvolume', 'create', p], { stdio: 'ignore' });
  return p;
}

/** Unmounts and removes every loop file system made since the last call (and anything mounted below). */
export function cleanupLoops(): void {
  for (const lfs of made.splice(0).reverse()) {
    // Submounts first (a passive's read-only binds), lazily: a stray process must not keep it.
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => m !== undefined && (m === lfs.dir || m.startsWith(`${lfs.dir}/`)))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    spawnSync('losetup', ['-d', lfs.device]);
    fs.rmSync(path.dirname(lfs.dir), { recursive: true, force: true });
  }
}
