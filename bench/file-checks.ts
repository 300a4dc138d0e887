// Making and comparing the big files of (b) and (c), in bounded memory.
import crypto from 'node:crypto';
import fs from 'node:fs';

const CHUNK_BYTES = 16 * 1024 * 1024;

/** Writes `size` random bytes to `file`; returns their sha256 (hex). */
export function writeRandomFile(file: string, size: number): string {
  const h = crypto.createHash('sha256');
  const buf = Buffer.alloc(CHUNK_BYTES);
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK_BYTES, size - done);
      crypto.randomFillSync(buf, 0, n);
      const chunk = buf.subarray(0, n);
      h.update(chunk);
      fs.writeSync(fd, chunk, 0, n, done);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export function sha256File(file: string): string {
  const h = crypto.createHash('sha256');
  const buf = Buffer.alloc(CHUNK_BYTES);
  const fd = fs.openSync(file, 'r');
  try {
    for (let pos = 0; ; ) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** True when both files hold the same bytes. */
export function sameContent(a: string, b: string): boolean {
  if (fs.statSync(a).size !== fs.statSync(b).size) return false;
  const ba = Buffer.alloc(CHUNK_BYTES);
  const bb = Buffer.alloc(CHUNK_BYTES);
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    for (let pos = 0; ; ) {
      const na = fs.readSync(fa, ba, 0, ba.length, pos);
      const nb = fs.readSync(fb, bb, 0, bb.length, pos);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      pos += na;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** `length` bytes of `file` at `offset` equal `want` (false when the file is missing or short). */
export function rangeEquals(file: string, offset: number, want: Buffer, scratch: Buffer): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const n = fs.readSync(fd, scratch, 0, want.length, offset);
    return n === want.length && scratch.subarray(0, n).equals(want);
  } finally {
    fs.closeSync(fd);
  }
}

export function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}
