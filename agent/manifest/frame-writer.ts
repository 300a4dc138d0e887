// Frames many values (a manifest's entries) into one reused buffer, taken whole each time it
// fills: a snapshot of 100,000 entries is a hundred writes of 1 MiB, not 100,000 small buffers
// gathered and concatenated (that cost the active ~45 MiB of peak RSS at the end of its
// baseline). It never overwrites bytes before the caller has taken them and is done with them.
import { FRAME_HEADER_BYTES, encodeShared, putFrame } from '../../shared/protocol/index.ts';

export class FrameWriter {
  private buf: Buffer;
  private used = 0;
  private total = 0;

  constructor(private readonly chunkBytes = 1 << 20) {
    this.buf = Buffer.allocUnsafeSlow(chunkBytes);
  }

  /** Bytes framed so far, over every chunk. */
  get bytes(): number {
    return this.total;
  }

  /**
   * Frames `value` (the same bytes as encodeFrameOf). False, with nothing framed, when the frame
   * does not fit in what is left of the chunk: take() it, then add again (into an empty chunk
   * every frame fits: one larger than a chunk gets a buffer of its own).
   */
  add(value: unknown): boolean {
    const payload = encodeShared(value);
    const need = FRAME_HEADER_BYTES + payload.length;
    if (this.used + need > this.buf.length) {
      if (this.used > 0) return false;
      this.buf = Buffer.allocUnsafeSlow(need);
    }
    putFrame(payload, this.buf, this.used);
    this.used += need;
    this.total += need;
    return true;
  }

  /**
   * The frames added since the last take, as a view of the chunk: the next add overwrites it, so
   * a caller writes it (and waits for the write) or copies it before adding more.
   */
  take(): Buffer {
    const chunk = this.buf.subarray(0, this.used);
    this.used = 0;
    // A frame larger than a chunk had a buffer of its own: the next chunk is of the usual size.
    if (this.buf.length > this.chunkBytes) this.buf = Buffer.allocUnsafeSlow(this.chunkBytes);
    return chunk;
  }
}
