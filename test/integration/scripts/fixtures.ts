// Shared by the script tests: temp folders that are removed afterwards, scripts written into
// them, and a pino logger whose NDJSON lines are kept in memory and parsed, configured like
// shared/log.ts, so tests assert on exactly what an operator would read.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';

export interface LogLine {
  level: string;
  msg: string;
  component?: string;
  script?: string;
  stream?: string;
  [key: string]: unknown;
}

export interface LogCapture {
  log: Logger;
  lines(): LogLine[];
}

export function captureLog(level = 'debug'): LogCapture {
  const raw: string[] = [];
  const log = pino(
    { level, base: {}, formatters: { level: (label) => ({ level: label }) } },
    { write: (s: string) => void raw.push(s) },
  );
  return { log, lines: () => raw.map((s) => JSON.parse(s) as LogLine) };
}

export function tempDir(prefix = 'tandem-scripts-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes `dir/name` as a /bin/sh script with `body`; returns its absolute path. */
export function writeScript(dir: string, name: string, body: string, mode = 0o755): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\nset -eu\n${body}\n`);
  fs.chmodSync(file, mode); // the mode option of writeFileSync only applies to a new file
  return file;
}

/** Polls `probe` until it returns something other than undefined. */
export async function waitFor<T>(probe: () => T | undefined, timeoutMs = 10_000, what = 'a condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
