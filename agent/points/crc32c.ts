// CRC-32C (Castagnoli), as btrfs computes it over each command of a send stream: the kernel's
// crc32c(0, …) with no inversion before or after. Node has no CRC-32C of its own.

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C of `data` from `seed`, without the usual pre- and post-inversion (btrfs's form). */
export function crc32cRaw(data: Uint8Array, seed = 0): number {
  let c = seed >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}
