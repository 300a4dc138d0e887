// A pino logger that keeps its NDJSON lines in memory, configured like shared/log.ts (level
// labels, redaction), so tests assert on exactly what an operator would read.
import pino, { type Logger } from 'pino';

export interface LogLine {
  level: string;
  msg: string;
  code?: string;
  component?: string;
  peer?: string;
  remote?: string;
  err?: { type?: string; message?: string; code?: string; hint?: string; reason?: string };
  [key: string]: unknown;
}

export interface LogCapture {
  log: Logger;
  /** Every line so far, parsed. */
  lines(): LogLine[];
  /** The raw NDJSON text so far (to check that nothing secret was written). */
  text(): string;
  /** Lines whose `code` (top level) is `code`. */
  withCode(code: string): LogLine[];
  /** Resolves with the first line matching `pred`, polling until `timeoutMs`. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

export function captureLog(level = 'debug'): LogCapture {
  const raw: string[] = [];
  const log = pino(
    {
      level,
      base: {},
      redact: { paths: ['key', 'psk', 'token', '*.key', '*.psk', '*.token'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    { write: (s: string) => void raw.push(s) },
  );
  const lines = (): LogLine[] => raw.map((s) => JSON.parse(s) as LogLine);
  return {
    log,
    lines,
    text: () => raw.join(''),
    withCode: (code) => lines().filter((l) => l.code === code),
    waitFor: (pred, timeoutMs = 5_000) => waitFor(() => lines().find(pred), timeoutMs, 'a matching log line'),
  };
}

/** Polls `probe` until it returns something other than undefined. */
export async function waitFor<T>(probe: () => T | undefined, timeoutMs = 5_000, what = 'a condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
