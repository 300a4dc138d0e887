// The small files of the lag measurement: file i's directory, name, size (1-4 KiB) and content
// are a pure function of i, so the poller on the passive side knows what to wait for without
// being told file by file.

const POOL_BYTES = 8192;
const MIN_BYTES = 1024;
const MAX_BYTES = 4096;

/** Deterministic bytes (xorshift32) that every file takes a slice of. */
const POOL: Buffer = (() => {
  const b = Buffer.alloc(POOL_BYTES);
  let x = 0x9e3779b9;
  for (let i = 0; i < POOL_BYTES; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
})();

export interface LagFile {
  dir: string;
  name: string;
  size: number;
  content: Buffer;
}

export function lagDirs(count: number): string[] {
  return Array.from({ length: count }, (_, d) => `d${d}`);
}

export function lagFile(i: number, dirCount: number): LagFile {
  const size = MIN_BYTES + (Math.imul(i, 2654435761) >>> 0) % (MAX_BYTES - MIN_BYTES + 1);
  const header = Buffer.from(`file ${i}\n`);
  const start = (Math.imul(i, 40503) >>> 0) % (POOL_BYTES - MAX_BYTES);
  const content = Buffer.concat([header, POOL.subarray(start, start + size - header.length)]);
  return { dir: `d${i % dirCount}`, name: `f${i}.bin`, size, content };
}

/** The index of a file from its name, or -1 for a name that is not one of ours. */
export function lagIndexOf(name: string): number {
  const m = /^f(\d+)\.bin$/.exec(name);
  return m ? Number(m[1]) : -1;
}
