// The one object layout per kind that the manifest keeps its entries in. Entries reach
// Manifest.set from a dozen sites (literals, spreads, Object.assign, decoded frames), each giving
// V8 another hidden class, most with a property array beside the object; and fs.Stats hands
// over integers as heap numbers, which makes a field "double" for every entry of that class, one
// 16-byte box per number. Rebuilt here, an entry is one object whose fields are all in-object,
// its small integers unboxed (measured on the active during a 100,000-file synchronisation:
// 7 boxed numbers and a property array per entry before). Never changes a value.
import type { DirEntry, Entry, FileEntry, LinkEntry } from './manifest.ts';

/** `x` as a small integer when it is one (V8 keeps those unboxed), else as it is. */
function smi(x: number): number {
  return (x | 0) === x ? x | 0 : x;
}

function smiOrUndefined(x: number | undefined): number | undefined {
  return x === undefined ? undefined : smi(x);
}

/**
 * `e` in its kind's single layout: the same values, every optional field present (undefined when
 * absent). Each kind is one object literal on purpose, its owner fields repeated: a literal is
 * what V8 gives all its fields in-object, where a shared helper's spread would not.
 */
export function compactEntry(e: Entry): Entry {
  switch (e.kind) {
    case 'file': {
      const out: FileEntry = {
        kind: 'file',
        mode: smi(e.mode),
        size: smi(e.size),
        mtimeMs: e.mtimeMs,
        ino: smi(e.ino),
        blocks: e.blocks,
        readAt: e.readAt,
        nlink: smiOrUndefined(e.nlink),
        uid: smiOrUndefined(e.uid),
        gid: smiOrUndefined(e.gid),
        user: e.user,
        group: e.group,
        xattrHash: e.xattrHash,
        ctimeMs: e.ctimeMs,
      };
      return out;
    }
    case 'dir': {
      const out: DirEntry = {
        kind: 'dir',
        mode: smi(e.mode),
        ino: smi(e.ino),
        mtimeMs: e.mtimeMs,
        uid: smiOrUndefined(e.uid),
        gid: smiOrUndefined(e.gid),
        user: e.user,
        group: e.group,
        xattrHash: e.xattrHash,
        ctimeMs: e.ctimeMs,
      };
      return out;
    }
    case 'symlink': {
      const out: LinkEntry = {
        kind: 'symlink',
        target: e.target,
        ino: smi(e.ino),
        mtimeMs: e.mtimeMs,
        uid: smiOrUndefined(e.uid),
        gid: smiOrUndefined(e.gid),
        user: e.user,
        group: e.group,
      };
      return out;
    }
  }
}
