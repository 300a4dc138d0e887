// Where each committed batch of the journal lies on disk, in sequence order. Kept in columns of
// typed arrays rather than one object per batch: a 1 GiB journal of small-file batches holds
// about a million of them, and objects would cost twice the memory and a GC walk each.
// Batches are only ever added at the end and dropped from the front (trimming), so lookups
// by sequence are binary searches.
import { TandemError } from '../../shared/errors.ts';

/** One committed batch: records `first..last` and their commit frame, contiguous in a segment. */
export interface BatchInfo {
  first: number;
  last: number;
  /** Every file in the batch was read inside one quiet window (a real instant of the disk). */
  consistent: boolean;
  /** Wall-clock time the batch was committed, for lag. */
  ts: number;
  generation: string;
  /**
   * Bytes of the batch on the wire, for window accounting: `length`, plus the bytes of its
   * referenced writes (docs/journal.md, "Referenced blocks"), which the journal does not hold.
   */
  bytes: number;
  /** File data the records carry (write payloads), for progress and throughput. */
  payloadBytes: number;
  /** Segment file that holds the batch. */
  segment: string;
  /** Offset of the batch's first record frame in the segment. */
  offset: number;
  /** Bytes of the record frames and the commit frame as stored (what is sent, when it has no referenced write). */
  length: number;
}

const INITIAL_CAPACITY = 256;

export class BatchIndex {
  private cap = INITIAL_CAPACITY;
  private start = 0;
  private end = 0;
  private first = new Float64Array(this.cap);
  private last = new Float64Array(this.cap);
  private ts = new Float64Array(this.cap);
  private offset = new Float64Array(this.cap);
  private length = new Float64Array(this.cap);
  private wire = new Float64Array(this.cap);
  private payload = new Float64Array(this.cap);
  /** Running total of `bytes` (wire) through each batch, so "bytes after seq" is one subtraction. */
  private cum = new Float64Array(this.cap);
  private seg = new Int32Array(this.cap);
  private gen = new Int32Array(this.cap);
  private consistent = new Uint8Array(this.cap);
  // Few distinct segment names and generations: store small ids in the columns.
  private readonly segNames = new Map<number, string>();
  private readonly segIds = new Map<string, number>();
  private readonly segBatches = new Map<number, number>();
  private nextSegId = 0;
  private readonly genNames: string[] = [];
  private readonly genIds = new Map<string, number>();

  get count(): number {
    return this.end - this.start;
  }

  /** Appends a batch; it must start above the last one. */
  push(b: BatchInfo): void {
    if (this.end > this.start && b.first <= this.last[this.end - 1]!) {
      throw new TandemError({
        code: 'TANDEM_ERR_INTERNAL',
        op: 'journal: index batch',
        reason: `batch ${b.first}..${b.last} does not follow ${this.last[this.end - 1]}`,
      });
    }
    if (this.end === this.cap) this.makeRoom();
    const i = this.end++;
    this.first[i] = b.first;
    this.last[i] = b.last;
    this.ts[i] = b.ts;
    this.offset[i] = b.offset;
    this.length[i] = b.length;
    this.wire[i] = b.bytes;
    this.payload[i] = b.payloadBytes;
    this.cum[i] = (i > this.start ? this.cum[i - 1]! : 0) + b.bytes;
    this.seg[i] = this.segmentId(b.segment);
    this.gen[i] = this.generationId(b.generation);
    this.consistent[i] = b.consistent ? 1 : 0;
  }

  /** The k-th batch still indexed (0 = oldest). */
  at(k: number): BatchInfo | undefined {
    const i = this.start + k;
    return k >= 0 && i < this.end ? this.info(i) : undefined;
  }

  oldest(): BatchInfo | undefined {
    return this.at(0);
  }

  newest(): BatchInfo | undefined {
    return this.at(this.count - 1);
  }

  /** The batch whose first record is `seq`, if indexed. */
  startingAt(seq: number): BatchInfo | undefined {
    const i = this.firstWithLastAtLeast(seq);
    return i < this.end && this.first[i] === seq ? this.info(i) : undefined;
  }

  /** The oldest batch holding a record above `seq` (the oldest not wholly acknowledged). */
  oldestAfter(seq: number): BatchInfo | undefined {
    const i = this.firstWithLastAtLeast(seq + 1);
    return i < this.end ? this.info(i) : undefined;
  }

  /** Wire bytes of the batches holding a record above `seq` (a partly acknowledged batch counts whole). */
  lengthAfter(seq: number): number {
    const i = this.firstWithLastAtLeast(seq + 1);
    if (i >= this.end) return 0;
    return this.cum[this.end - 1]! - (this.cum[i]! - this.wire[i]!);
  }

  /** Drops the oldest batches while they lie in `segment` (its file is being deleted). */
  dropFrontOfSegment(segment: string): number {
    const id = this.segIds.get(segment);
    if (id === undefined) return 0;
    let n = 0;
    while (this.start < this.end && this.seg[this.start] === id) {
      this.start++;
      n++;
    }
    const left = (this.segBatches.get(id) ?? 0) - n;
    if (left > 0) this.segBatches.set(id, left);
    else {
      this.segBatches.delete(id);
      this.segIds.delete(segment);
      this.segNames.delete(id);
    }
    if (this.start === this.end) this.start = this.end = 0;
    return n;
  }

  clear(): void {
    this.start = this.end = 0;
    this.segIds.clear();
    this.segNames.clear();
    this.segBatches.clear();
  }

  private info(i: number): BatchInfo {
    return {
      first: this.first[i]!,
      last: this.last[i]!,
      consistent: this.consistent[i] === 1,
      ts: this.ts[i]!,
      generation: this.genNames[this.gen[i]!]!,
      bytes: this.wire[i]!,
      payloadBytes: this.payload[i]!,
      segment: this.segNames.get(this.seg[i]!)!,
      offset: this.offset[i]!,
      length: this.length[i]!,
    };
  }

  /** Index of the first batch whose `last` is >= seq (this.end when none). */
  private firstWithLastAtLeast(seq: number): number {
    let lo = this.start;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.last[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private segmentId(name: string): number {
    let id = this.segIds.get(name);
    if (id === undefined) {
      id = this.nextSegId++;
      this.segIds.set(name, id);
      this.segNames.set(id, name);
    }
    this.segBatches.set(id, (this.segBatches.get(id) ?? 0) + 1);
    return id;
  }

  private generationId(g: string): number {
    let id = this.genIds.get(g);
    if (id === undefined) {
      id = this.genNames.length;
      this.genNames.push(g);
      this.genIds.set(g, id);
    }
    return id;
  }

  /** Reuses the space trimming freed at the front, or doubles the columns. */
  private makeRoom(): void {
    const live = this.end - this.start;
    const cap = live * 2 > this.cap ? this.cap * 2 : this.cap;
    const move = <T extends Float64Array | Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = cap === this.cap ? a : make(cap);
      b.set(a.subarray(this.start, this.end), 0);
      return b;
    };
    this.first = move(this.first, (n) => new Float64Array(n));
    this.last = move(this.last, (n) => new Float64Array(n));
    this.ts = move(this.ts, (n) => new Float64Array(n));
    this.offset = move(this.offset, (n) => new Float64Array(n));
    this.length = move(this.length, (n) => new Float64Array(n));
    this.wire = move(this.wire, (n) => new Float64Array(n));
    this.payload = move(this.payload, (n) => new Float64Array(n));
    this.cum = move(this.cum, (n) => new Float64Array(n));
    this.seg = move(this.seg, (n) => new Int32Array(n));
    this.gen = move(this.gen, (n) => new Int32Array(n));
    this.consistent = move(this.consistent, (n) => new Uint8Array(n));
    this.cap = cap;
    this.start = 0;
    this.end = live;
  }
}
