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

/** Decodes one value. Binary fields are views into `buf`. Throws on malformed input. */
export function decode(buf: Uint8Array): unknown {
  return packr.unpack(buf);
}
