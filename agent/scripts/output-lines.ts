// Cuts a script's output stream into lines for the log. A script is the operator's code, not
// ours: one that prints a megabyte without a newline, or loops printing, must cost a bounded
// amount of memory and log, so a line is cut at MAX_LINE_CHARS and a run keeps at most
// MAX_LINES_PER_RUN lines (stdout and stderr together); the rest is counted, not kept.

export const MAX_LINE_CHARS = 2000;
export const MAX_LINES_PER_RUN = 1000;

/** The lines one run may still log, shared by its stdout and its stderr. */
export class LineBudget {
  private left: number;
  private droppedLines = 0;

  constructor(maxLines = MAX_LINES_PER_RUN) {
    this.left = maxLines;
  }

  /** True when one more line may be logged; otherwise counts it as dropped. */
  take(): boolean {
    if (this.left > 0) {
      this.left -= 1;
      return true;
    }
    this.droppedLines += 1;
    return false;
  }

  get dropped(): number {
    return this.droppedLines;
  }
}

export class OutputLines {
  private buf = '';
  /** The start of an over-long line was emitted; its rest is skipped up to the next newline. */
  private skipping = false;

  constructor(
    private readonly emit: (line: string, truncated: boolean) => void,
    private readonly maxChars = MAX_LINE_CHARS,
  ) {}

  /** Feeds decoded text (the stream's encoding set to utf8, so no character is split). */
  push(text: string): void {
    this.buf += text;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (this.skipping) this.skipping = false;
      else this.line(line);
    }
    // No newline yet: never hold more than one line's worth.
    if (this.skipping) this.buf = '';
    else if (this.buf.length > this.maxChars) {
      this.emit(this.buf.slice(0, this.maxChars), true);
      this.buf = '';
      this.skipping = true;
    }
  }

  /** The stream ended: a last line without a newline still counts. */
  end(): void {
    if (!this.skipping && this.buf.length > 0) this.line(this.buf);
    this.buf = '';
    this.skipping = false;
  }

  private line(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.length > this.maxChars) this.emit(line.slice(0, this.maxChars), true);
    else this.emit(line, false);
  }
}
