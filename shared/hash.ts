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
