// Reading /proc/self/mountinfo, as pure functions: which mounts stand at a path, and whether
// the one on top is the read-only bind that standby protection stacks over a protected root.
// Only mounts Tandem recorded making are ever taken down (root-protection.ts); these functions
// make sure that the mount found there now is still one of that shape.

export interface MountEntry {
  id: number;
  parent: number;
  /** major:minor of the file system. */
  dev: string;
  /** The directory of that file system the mount shows (a bind mount shows a subdirectory). */
  root: string;
  mountPoint: string;
  /** Per-mount options: "ro" or "rw" first. */
  options: string[];
  fsType: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses the text of /proc/PID/mountinfo; lines it cannot read are skipped. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (f.length < 10 || dash < 0) continue;
    const id = Number(f[0]);
    const parent = Number(f[1]);
    if (!Number.isInteger(id) || !Number.isInteger(parent)) continue;
    out.push({ id, parent, dev: f[2]!, root: unescape(f[3]!), mountPoint: unescape(f[4]!), options: f[5]!.split(','), fsType: f[dash + 1] ?? '' });
  }
  return out;
}

/** The mounts at exactly `mountPoint`, bottom first (each one's parent is the one below it). */
export function mountsAt(entries: readonly MountEntry[], mountPoint: string): MountEntry[] {
  const here = entries.filter((e) => e.mountPoint === mountPoint);
  const ids = new Set(here.map((e) => e.id));
  const bottom = here.filter((e) => !ids.has(e.parent));
  const stack: MountEntry[] = [];
  let cur = bottom[0];
  while (cur !== undefined && stack.length <= here.length) {
    stack.push(cur);
    const id: number = cur.id;
    cur = here.find((e) => e.parent === id);
  }
  return stack;
}

/**
 * Whether `m` is a read-only bind of the file system it sits on: the mount standby protection
 * stacks over a protected root. An operator's own mount at a root (another file system, or a
 * read-write one) never is.
 */
export function isProtectionMount(entries: readonly MountEntry[], m: MountEntry): boolean {
  const under = entries.find((e) => e.id === m.parent);
  return m.options[0] === 'ro' && under !== undefined && under.dev === m.dev;
}

export function isReadOnly(m: MountEntry): boolean {
  return m.options[0] === 'ro';
}
