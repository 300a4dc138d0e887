// The framing shared by the journal, the receive log and batches on the wire:
//   u32le payload length | u32le xxhash32(payload) | payload (one msgpack entry)
// A write record's frame sets the top bit of the length word ("split"): its xxhash32 covers
// the payload up to the block data, which is its last field, and the data is covered by the
// xxhash64 the record carries (the block's hash, computed once by capture). Every byte is then
// hashed once per side instead of twice, and a torn or damaged frame is still caught.
// A compressed write record (block-codec.ts) is framed whole, without the split: its hash is
// over the raw block, not over the bytes in the frame, so only the frame checksum covers them.
// A batch travels as the exact bytes the active framed (a block the active's journal keeps as a
// `write-ref` travels as the `write` it framed in memory); the passive checks every frame and
// appends the same bytes to its receive log, so nothing is re-encoded on the way.
import { hash32, hash64 } from '../hash.ts';
import { decode, encodeShared } from './codec.ts';
import { entryProblem, storedEntryProblem, type LogEntry, type StoredEntry } from './records.ts';

export const FRAME_HEADER_BYTES = 8;
/** Length-word flag of a write frame whose checksum is split (see the header comment). */
const SPLIT = 0x8000_0000;
/** No single entry may exceed this (a write record holds at most one block of 16 MiB). */
export const MAX_ENTRY_BYTES = 17 * 1024 * 1024;

export function encodeFrame(entry: LogEntry): Buffer {
  return encodeFrameOf(entry);
}

/**
 * Frames `entry` into memory from `alloc` (the journal's per-batch arena), so the only copy is
 * from msgpackr's buffer into the frame.
 */
export function encodeFrameInto(entry: StoredEntry, alloc: (bytes: number) => Buffer): Buffer {
  if (entry.op === 'write') return encodeWriteFrameInto(entry, alloc);
  const payload = encodeShared(entry);
  const frame = alloc(FRAME_HEADER_BYTES + payload.length);
  putFrame(payload, frame, 0);
  return frame;
}

/** Lays `payload` out as one frame (its header, then itself) at `offset` of `target`, which has room for it. */
export function putFrame(payload: Buffer, target: Buffer, offset: number): void {
  target.writeUInt32LE(payload.length, offset);
  target.writeUInt32LE(hash32(payload), offset + 4);
  payload.copy(target, offset + FRAME_HEADER_BYTES);
}

const DATA_KEY = Buffer.from([0xa4, 0x64, 0x61, 0x74, 0x61]); // msgpack fixstr "data"

/**
 * A write record with its data laid straight into the frame. msgpackr never reuses a buffer it
 * returned a view of, so packing 1 GiB of 64 KiB blocks through it allocates about 1 GiB of
 * buffers (measured: 50 for 200 records) and the collector pays for it. The small fields are
 * packed as usual; "data" is appended as bin32, and the map's count (always map16 with
 * msgpackr's plain objects) is raised by one. The result decodes like any other record.
 */
function encodeWriteFrameInto(entry: Extract<LogEntry, { op: 'write' }>, alloc: (bytes: number) => Buffer): Buffer {
  const { data, ...rest } = entry;
  const head = encodeShared(rest);
  if (head[0] !== 0xde) throw new Error(`encodeFrameInto: expected a map16 header, got 0x${head[0]?.toString(16)}`);
  const payloadLength = head.length + DATA_KEY.length + 5 + data.length;
  const frame = alloc(FRAME_HEADER_BYTES + payloadLength);
  let o = FRAME_HEADER_BYTES;
  head.copy(frame, o);
  frame.writeUInt16BE(head.readUInt16BE(1) + 1, o + 1);
  o += head.length;
  DATA_KEY.copy(frame, o);
  o += DATA_KEY.length;
  frame[o] = 0xc6;
  frame.writeUInt32BE(data.length, o + 1);
  o += 5;
  frame.set(data, o);
  if (entry.encoding !== undefined) {
    frame.writeUInt32LE(payloadLength, 0);
    frame.writeUInt32LE(hash32(frame.subarray(FRAME_HEADER_BYTES)), 4);
    return frame;
  }
  frame.writeUInt32LE((payloadLength | SPLIT) >>> 0, 0);
  frame.writeUInt32LE(hash32(frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payloadLength - data.length)), 4);
  return frame;
}

/** Frames any msgpack-encodable value (manifest deltas use the same framing as logs). */
export function encodeFrameOf(entry: unknown): Buffer {
  const payload = encodeShared(entry);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  putFrame(payload, frame, 0);
  return frame;
}

export type ParsedFrame = ParsedFrameOf<LogEntry>;

export interface ParsedFrameOf<T> {
  entry: T;
  /** Offset of the frame's first byte in the buffer. */
  offset: number;
  /** Total bytes of the frame, header included. */
  length: number;
}

export type FrameStop =
  | { kind: 'end' }
  /** The buffer ends inside a frame: a torn tail when it is the end of a log. */
  | { kind: 'truncated'; offset: number }
  | { kind: 'checksum'; offset: number }
  | { kind: 'malformed'; offset: number; reason: string };

/** A split frame: a write record whose data ends the payload, prefix and data both intact. */
function splitChecksumHolds(entry: unknown, payload: Buffer, checksum: number): boolean {
  const r = entry as { op?: unknown; data?: unknown; hash?: unknown } | null;
  if (r === null || typeof r !== 'object' || r.op !== 'write' || !(r.data instanceof Uint8Array) || !(r.hash instanceof Uint8Array)) return false;
  // A compressed block is never split-framed (see the header comment): a frame that says so lies.
  if ((r as { encoding?: unknown }).encoding !== undefined) return false;
  const data = r.data;
  // The data must be the payload's last bytes (a view, as msgpackr decodes binary by default).
  if (data.buffer !== payload.buffer || data.byteOffset + data.length !== payload.byteOffset + payload.length) return false;
  if (hash32(payload.subarray(0, payload.length - data.length)) !== checksum) return false;
  return r.hash.length === 8 && hash64(data).equals(r.hash);
}

/**
 * Parses consecutive frames from `buf[start..]` until the end or the first bad frame.
 * Never throws on bad input: the caller decides whether a stop is a torn tail or corruption.
 */
/**
 * How many frames `buf` holds, read from the length words alone (nothing decoded, nothing
 * hashed), counting at most to `max + 1`: a batch with too many records is refused before its
 * records cost anything. A truncated tail counts as one more frame; parseFrames judges it.
 */
export function countFrames(buf: Uint8Array, max: number): number {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let n = 0;
  for (let off = 0; off < view.length && n <= max; n++) {
    if (view.length - off < FRAME_HEADER_BYTES) return n + 1;
    off += FRAME_HEADER_BYTES + (view.readUInt32LE(off) & ~SPLIT);
  }
  return n;
}

/**
 * Write records decoded from a split frame by parseFrames (which hashed their data just then) or
 * by decodeAcceptedFrames (from frames parseFrames accepted earlier): their data is a view into
 * bytes whose xxhash64 was found equal to the record's hash, so the applier need not hash the
 * block again ("every byte hashed once per side"). Membership is by the decoded object itself:
 * nothing on the wire can claim it, and a record rebuilt from one (inflated, copied) is not in
 * it and is hashed as before.
 */
const verifiedData = new WeakSet<object>();

/** Whether `record`'s data was checked against its hash when its frame was accepted (see verifiedData). */
export function dataVerified(record: object): boolean {
  return verifiedData.has(record);
}

/**
 * The entries of frames that parseFrames already accepted whole, held since in this process
 * (a batch checked when it arrived, or read back and checked by the receive log): decoded again
 * without hashing and checking them a second time. Throws on frames it cannot read, which only
 * a caller that passed unchecked bytes can meet.
 */
export function decodeAcceptedFrames(buf: Uint8Array): LogEntry[] {
  const out: LogEntry[] = [];
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let off = 0; off < view.length; ) {
    if (view.length - off < FRAME_HEADER_BYTES) throw new Error(`decodeAcceptedFrames: truncated frame at ${off}`);
    const word = view.readUInt32LE(off);
    const len = word & ~SPLIT;
    if (view.length - off - FRAME_HEADER_BYTES < len) throw new Error(`decodeAcceptedFrames: truncated frame at ${off}`);
    const entry = decode(view.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len)) as LogEntry;
    // parseFrames accepted this split frame only once its data matched its hash (splitChecksumHolds).
    if ((word & SPLIT) !== 0 && entry.op === 'write') verifiedData.add(entry);
    out.push(entry);
    off += FRAME_HEADER_BYTES + len;
  }
  return out;
}

export function parseFrames(buf: Uint8Array, start = 0): { frames: ParsedFrame[]; stop: FrameStop } {
  return parseFramesWith<LogEntry>(buf, start, entryProblem);
}

/** As parseFrames, for the active's journal on disk, which may also hold referenced writes. */
export function parseStoredFrames(buf: Uint8Array, start = 0): { frames: ParsedFrameOf<StoredEntry>[]; stop: FrameStop } {
  return parseFramesWith<StoredEntry>(buf, start, storedEntryProblem);
}

/** Frames whose payload is checked by `problem` instead of as a log entry (manifest deltas…). */
export function parseFramesWith<T>(
  buf: Uint8Array,
  start: number,
  problem: (value: unknown) => string | undefined,
): { frames: ParsedFrameOf<T>[]; stop: FrameStop } {
  const frames: ParsedFrameOf<T>[] = [];
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = start;
  while (off < view.length) {
    if (view.length - off < FRAME_HEADER_BYTES) return { frames, stop: { kind: 'truncated', offset: off } };
    const word = view.readUInt32LE(off);
    const split = (word & SPLIT) !== 0;
    const len = word & ~SPLIT;
    if (len > MAX_ENTRY_BYTES) return { frames, stop: { kind: 'malformed', offset: off, reason: `frame length ${len} exceeds ${MAX_ENTRY_BYTES}` } };
    if (view.length - off - FRAME_HEADER_BYTES < len) return { frames, stop: { kind: 'truncated', offset: off } };
    const payload = view.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
    if (!split && hash32(payload) !== view.readUInt32LE(off + 4)) return { frames, stop: { kind: 'checksum', offset: off } };
    let entry: unknown;
    try {
      entry = decode(payload);
    } catch (err) {
      return { frames, stop: split ? { kind: 'checksum', offset: off } : { kind: 'malformed', offset: off, reason: `undecodable: ${(err as Error).message}` } };
    }
    if (split) {
      if (!splitChecksumHolds(entry, payload, view.readUInt32LE(off + 4))) return { frames, stop: { kind: 'checksum', offset: off } };
      // Its data was just hashed and matched: whoever applies this very record need not again.
      verifiedData.add(entry as object);
    }
    const reason = problem(entry);
    if (reason !== undefined) return { frames, stop: { kind: 'malformed', offset: off, reason } };
    frames.push({ entry: entry as T, offset: off, length: FRAME_HEADER_BYTES + len });
    off += FRAME_HEADER_BYTES + len;
  }
  return { frames, stop: { kind: 'end' } };
}
