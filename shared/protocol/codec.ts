// msgpackr configured the same way at every end (PACKAGES.md: a default Unpackr yields Maps
// while `unpack` yields objects). No record structures: every frame decodes on its own, so a
// log segment or a reconnect never depends on state from earlier frames.
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false });

/** Encodes to a fresh buffer (never a view into msgpackr's shared buffer that a later call reuses). */
export function encode(value: unknown): Buffer {
  return Buffer.from(packr.pack(value));
}

/** Encodes into msgpackr's shared buffer: the result is only valid until the next encode. */
export function encodeShared(value: unknown): Buffer {
  return packr.pack(value);
}

/**
 * A batch message as two buffers: the msgpack map up to the header of its `frames` field, and the
 * frames themselves, untouched. Concatenated they are exactly `encode(m)`'s map; sent as two
 * WebSocket fragments they travel without the 4 MiB copy a plain encode would make.
 */
export function encodeBatchParts(m: { t: 'batch'; first: number; last: number; frames: Uint8Array }): [Buffer, Uint8Array] {
  const binHeader = Buffer.allocUnsafe(5);
  binHeader[0] = 0xc6; // bin32
  binHeader.writeUInt32BE(m.frames.length, 1);
  const head = Buffer.concat([
    Buffer.from([0xde, 0x00, 0x04]), // map16 of 4 entries
    // encode() copies each value out of msgpackr's shared buffer before the next one is packed.
    encode('t'), encode(m.t),
    encode('first'), encode(m.first),
    encode('last'), encode(m.last),
    encode('frames'), binHeader,
  ]);
  return [head, m.frames];
}

/** msgpack fixstr "frames" then a bin32 header: how encodeBatchParts's head ends. */
const FRAMES_BIN32 = Buffer.from([0xa6, 0x66, 0x72, 0x61, 0x6d, 0x65, 0x73, 0xc6]);
const MAX_BATCH_HEAD_BYTES = 256;

/**
 * The inverse of encodeBatchParts without joining the parts: when `head` is a batch message's
 * map up to the header of its `frames` field (the last one), and that header announces exactly
 * `frames.length` bytes, the message with `frames` as they are (no copy of the 4 MiB). Undefined
 * when the parts are anything else: the caller then decodes them joined, as before.
 */
export function decodeBatchParts(head: Buffer, frames: Buffer): unknown {
  const n = head.length;
  if (n < FRAMES_BIN32.length + 4 || n > MAX_BATCH_HEAD_BYTES) return undefined;
  if (!head.subarray(n - 4 - FRAMES_BIN32.length, n - 4).equals(FRAMES_BIN32) || head.readUInt32BE(n - 4) !== frames.length) return undefined;
  // The same head announcing an empty `frames`: a complete message whose last field is then set.
  const closed = Buffer.from(head);
  closed.writeUInt32BE(0, n - 4);
  let v: unknown;
  try {
    v = packr.unpack(closed);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const m = v as Record<string, unknown>;
  if (m.t !== 'batch' || !(m.frames instanceof Uint8Array) || m.frames.length !== 0) return undefined;
  m.frames = frames;
  return m;
}

/** Decodes one value. Binary fields are views into `buf`. Throws on malformed input. */
export function decode(buf: Uint8Array): unknown {
  return packr.unpack(buf);
}
