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

/** Decodes one value. Binary fields are views into `buf`. Throws on malformed input. */
export function decode(buf: Uint8Array): unknown {
  return packr.unpack(buf);
}
