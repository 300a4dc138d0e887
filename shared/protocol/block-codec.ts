// Per-block compression of write records (channel.compression). The active's capture compresses
// a block before it journals it, so the journal on disk, the batches on the wire and the
// passive's receive log all hold the smaller form, and a batch still travels as the exact bytes
// journaled. The passive inflates before it checks the block's xxhash64, which is always over
// the raw bytes.
// Pure functions over records: no sockets, no files, no configuration of their own.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { TandemError } from '../errors.ts';
import { MAX_BLOCK_BYTES, writeLength, type BlockEncoding, type WriteRecord } from './records.ts';

/** Compression levels of channel.compression; 0 is off. */
export const MIN_COMPRESSION_LEVEL = 1;
export const MAX_COMPRESSION_LEVEL = 9;

/**
 * A compressed block must save at least this much to be kept: the two fields it adds to the
 * record ("encoding": "deflate-raw", "rawLength": n) cost about 30 bytes of msgpack, and the
 * passive pays an inflate for it.
 */
export const MIN_SAVING_BYTES = 64;

/** Blocks shorter than this are journaled raw: nothing to gain that pays for the fields. */
export const MIN_COMPRESSIBLE_BYTES = 256;

/**
 * Before a block bigger than this is deflated whole, its first SAMPLE_BYTES are deflated at
 * level 1: when they do not shrink by an eighth, the block is kept raw unread. Measured
 * (bench/results/compression.md): deflating a random 64 KiB block costs as much as a text one
 * and saves nothing, so without the sample media and archives would cost CPU for no gain. A
 * block whose start is incompressible but whose rest is not loses its compression, never data.
 */
export const SAMPLE_BYTES = 4096;
const SAMPLE_MAX_RATIO = 7 / 8;

const ENCODING: BlockEncoding = 'deflate-raw';
const deflateRaw = promisify(zlib.deflateRaw);

/** The record's fields that compression changes. */
type WriteFields = Pick<WriteRecord, 'data' | 'encoding' | 'rawLength'>;

/**
 * The record with its data compressed at `level` (1..9), or the record itself when compression
 * is off, the block is tiny, already encoded, its sample does not shrink, or it does not shrink
 * by MIN_SAVING_BYTES (random, already compressed data): an incompressible block is never sent
 * larger than raw.
 */
export function compressWrite<R extends WriteFields>(r: R, level: number): R {
  if (!worthTrying(r, level)) return r;
  return kept(r, zlib.deflateRawSync(r.data, { level: Math.min(level, MAX_COMPRESSION_LEVEL) }));
}

/**
 * compressWrite with the deflate in libuv's thread pool: the event loop stays free and blocks
 * compress in parallel on the cores there are. `r.data` must not change until it settles.
 */
export async function compressWriteAsync<R extends WriteFields>(r: R, level: number): Promise<R> {
  if (!worthTrying(r, level)) return r;
  // An output buffer the size of the block: one trip to the pool per block, not one per 16 KiB.
  return kept(r, await deflateRaw(r.data, { level: Math.min(level, MAX_COMPRESSION_LEVEL), chunkSize: Math.max(zlib.constants.Z_MIN_CHUNK, r.data.length + 1024) }));
}

/** Whether to deflate `r` at all: compression on, a raw block worth it, and a sample that shrinks. */
function worthTrying(r: WriteFields, level: number): boolean {
  if (level < MIN_COMPRESSION_LEVEL || r.encoding !== undefined || r.data.length < MIN_COMPRESSIBLE_BYTES) return false;
  if (r.data.length > 2 * SAMPLE_BYTES) {
    const sample = zlib.deflateRawSync(r.data.subarray(0, SAMPLE_BYTES), { level: 1 });
    if (sample.length > SAMPLE_BYTES * SAMPLE_MAX_RATIO) return false;
  }
  return true;
}

function kept<R extends WriteFields>(r: R, packed: Buffer): R {
  if (packed.length + MIN_SAVING_BYTES > r.data.length) return r;
  return { ...r, data: packed, encoding: ENCODING, rawLength: r.data.length };
}

/**
 * The record with its data raw: inflated when it was compressed, the record itself when it was
 * not. Throws TANDEM_ERR_BLOCK_UNDECODABLE when the data is not valid raw deflate or inflates to
 * any length but `rawLength` (inflating never produces more than that: no deflate bomb).
 * The caller still checks `hash` against the result.
 */
export function decompressWrite(r: WriteRecord): WriteRecord {
  if (r.encoding === undefined) return r;
  const want = writeLength(r);
  let raw: Buffer;
  try {
    if (r.encoding !== ENCODING) throw new Error(`unknown encoding ${JSON.stringify(r.encoding)}`);
    if (!Number.isSafeInteger(want) || want <= 0 || want > MAX_BLOCK_BYTES) throw new Error(`bad rawLength ${want}`);
    // One byte of room beyond the stated length, so that "too long" is told apart from "exact";
    // the output buffer that size, so that a block inflates in one call, not 16 KiB at a time
    // (a fresh process's first blocks in a third less time).
    raw = zlib.inflateRawSync(r.data, { maxOutputLength: want + 1, chunkSize: Math.max(zlib.constants.Z_MIN_CHUNK, want + 1) });
  } catch (err) {
    throw undecodable(r, (err as Error).message);
  }
  if (raw.length !== want) throw undecodable(r, `inflates to ${raw.length} bytes, the record states ${want}`);
  const { encoding: _e, rawLength: _l, ...rest } = r;
  return { ...rest, data: raw };
}

function undecodable(r: WriteRecord, cause: string): TandemError {
  return new TandemError({
    code: 'TANDEM_ERR_BLOCK_UNDECODABLE',
    op: `decompress write ${r.root}/${r.path} at offset ${r.offset}`,
    reason: `the ${r.data.length} compressed bytes do not inflate to the block: ${cause}`,
    hint: 'the frame checksum held, so the link did not damage it: the active journaled a bad block or runs an incompatible Tandem version; nothing of the batch was written',
    details: { seq: r.seq, root: r.root, path: r.path, offset: r.offset, encoding: r.encoding },
  });
}
