// xxhash64 for block hashes and xxhash32 for frame checksums (xxhash-wasm). The WASM memory
// grows to the largest input and never shrinks (PACKAGES.md), so callers hash blocks, never
// whole files. Block hashes are kept as 8-byte little-endian buffers: compact in manifests
// and comparable with Buffer.equals, without BigInt allocations in hot loops.
import xxhash from 'xxhash-wasm';

type XXHashApi = Awaited<ReturnType<typeof xxhash>>;

let api: XXHashApi | undefined;

/** Must be awaited once before any other function of this module is used. */
export async function initHash(): Promise<void> {
  api ??= await xxhash();
}

function ready(): XXHashApi {
  if (api === undefined) throw new Error('hash: initHash() was not awaited');
  return api;
}

export const HASH_BYTES = 8;

/** xxhash64 of `data`, written as 8 bytes into `out` at `offset`. */
export function hash64Into(data: Uint8Array, out: Buffer, offset: number): void {
  out.writeBigUInt64LE(ready().h64Raw(data), offset);
}

/** xxhash64 of `data` as an 8-byte buffer. */
export function hash64(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HASH_BYTES);
  hash64Into(data, out, 0);
  return out;
}

/** xxhash32 of `data`, for per-frame checksums. */
export function hash32(data: Uint8Array): number {
  return ready().h32Raw(data);
}

const zeroHashes = new Map<number, Buffer>();
let zeros = Buffer.alloc(0);

/** xxhash64 of `length` zero bytes: the hash of a block that is a hole (cached per length). */
export function zeroBlockHash(length: number): Buffer {
  let h = zeroHashes.get(length);
  if (h === undefined) {
    if (zeros.length < length) zeros = Buffer.alloc(length);
    h = hash64(zeros.subarray(0, length));
    // Block sizes are few; short last blocks of many lengths are not kept forever.
    if (zeroHashes.size > 256) zeroHashes.clear();
    zeroHashes.set(length, h);
  }
  return h;
}

/** True when every byte of `data` is zero (memcmp speed: compared with a zero buffer). */
export function isAllZero(data: Uint8Array): boolean {
  if (zeros.length < data.length) zeros = Buffer.alloc(data.length);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(zeros.subarray(0, data.length));
}
