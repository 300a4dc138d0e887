// btrfs send streams made by hand, byte for byte as the kernel writes them (tests of the parser
// and of the change list).
import { crc32cRaw } from '../../agent/points/index.ts';

/** A stream as the kernel writes it: header, then commands with their attributes and checksums. */
export function stream(commands: [number, [number, Buffer][]][], version = 1): Buffer {
  const parts = [Buffer.from('btrfs-stream\0', 'latin1'), Buffer.alloc(4)];
  parts[1]!.writeUInt32LE(version);
  for (const [cmd, attrs] of commands) {
    const body = Buffer.concat(
      attrs.map(([type, value]) => {
        const h = Buffer.alloc(4);
        h.writeUInt16LE(type, 0);
        h.writeUInt16LE(value.length, 2);
        return Buffer.concat([h, value]);
      }),
    );
    const head = Buffer.alloc(10);
    head.writeUInt32LE(body.length, 0);
    head.writeUInt16LE(cmd, 4);
    const whole = Buffer.concat([head, body]);
    whole.writeUInt32LE(crc32cRaw(whole), 6);
    parts.push(whole);
  }
  return Buffer.concat(parts);
}

export const str = (s: string) => Buffer.from(s, 'utf8');
export const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
export const A = { SIZE: 4, PATH: 15, PATH_TO: 16, PATH_LINK: 17, OFFSET: 18, DATA: 19, CLONE_LEN: 24 };
export const C = { SNAPSHOT: 2, MKFILE: 3, MKDIR: 4, SYMLINK: 8, RENAME: 9, LINK: 10, UNLINK: 11, RMDIR: 12, WRITE: 15, CLONE: 16, TRUNCATE: 17, CHMOD: 18, UTIMES: 20, END: 21, UPDATE_EXTENT: 22 };

