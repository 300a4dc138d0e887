// The framing shared by the journal, the receive log and batches on the wire:
//   u32le payload length | u32le xxhash32(payload) | payload (one msgpack entry)
// A batch travels as the exact bytes the active journaled; the passive checks every frame and
// appends the same bytes to its receive log, so nothing is re-encoded on the way.
import { hash32 } from '../hash.ts';
import { decode, encodeShared } from './codec.ts';
import { entryProblem, type LogEntry } from './records.ts';

export const FRAME_HEADER_BYTES = 8;
/** No single entry may exceed this (a write record holds at most one block of 16 MiB). */
export const MAX_ENTRY_BYTES = 17 * 1024 * 1024;

export function encodeFrame(entry: LogEntry): Buffer {
  return encodeFrameOf(entry);
}

/**
 * Frames `entry` into memory from `alloc` (the journal's per-batch arena), so the only copy is
 * from msgpackr's buffer into the frame.
 */
export function encodeFrameInto(entry: LogEntry, alloc: (bytes: number) => Buffer): Buffer {
  const payload = encodeShared(entry);
  const frame = alloc(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(hash32(payload), 4);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** Frames any msgpack-encodable value (manifest deltas use the same framing as logs). */
export function encodeFrameOf(entry: unknown): Buffer {
  const payload = encodeShared(entry);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(hash32(payload), 4);
  payload.copy(frame, FRAME_HEADER_BYTES);
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

/**
 * Parses consecutive frames from `buf[start..]` until the end or the first bad frame.
 * Never throws on bad input: the caller decides whether a stop is a torn tail or corruption.
 */
export function parseFrames(buf: Uint8Array, start = 0): { frames: ParsedFrame[]; stop: FrameStop } {
  return parseFramesWith<LogEntry>(buf, start, entryProblem);
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
    const len = view.readUInt32LE(off);
    if (len > MAX_ENTRY_BYTES) return { frames, stop: { kind: 'malformed', offset: off, reason: `frame length ${len} exceeds ${MAX_ENTRY_BYTES}` } };
    if (view.length - off - FRAME_HEADER_BYTES < len) return { frames, stop: { kind: 'truncated', offset: off } };
    const payload = view.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
    if (hash32(payload) !== view.readUInt32LE(off + 4)) return { frames, stop: { kind: 'checksum', offset: off } };
    let entry: unknown;
    try {
      entry = decode(payload);
    } catch (err) {
      return { frames, stop: { kind: 'malformed', offset: off, reason: `undecodable: ${(err as Error).message}` } };
    }
    const reason = problem(entry);
    if (reason !== undefined) return { frames, stop: { kind: 'malformed', offset: off, reason } };
    frames.push({ entry: entry as T, offset: off, length: FRAME_HEADER_BYTES + len });
    off += FRAME_HEADER_BYTES + len;
  }
  return { frames, stop: { kind: 'end' } };
}
