// Shared by the journal and receive-log tests: temp directories, a logger whose lines the test
// can read, and small record builders.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { afterEach, beforeAll } from 'vitest';
import type { Journal } from '../../../agent/journal/index.ts';
import { hash64, initHash } from '../../../shared/hash.ts';
import type { NewRecord } from '../../../shared/protocol/index.ts';

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

/** A logger that keeps every line (NDJSON parsed), as the agent's would write them. */
export function captureLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino(
    { level: 'debug', base: {}, formatters: { level: (label) => ({ level: label }) } },
    { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) },
  );
  return { log, lines };
}

const made: string[] = [];

export async function tempDir(prefix = 'tandem-journal-'): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export async function removeTempDirs(): Promise<void> {
  for (const d of made.splice(0)) await fsp.rm(d, { recursive: true, force: true });
}

/**
 * The hooks of a journal test file: the hash ready before it, and after each test its temp
 * directories removed and the journals it pushed to the returned list closed.
 */
export function journalTestHooks(): Journal[] {
  const open: Journal[] = [];
  beforeAll(async () => {
    await initHash();
  });
  afterEach(removeTempDirs);
  afterEach(async () => {
    for (const j of open.splice(0)) await j.close().catch(() => undefined);
  });
  return open;
}

export function writeRecord(pathName: string, size: number, fill = 0x61, offset = 0): NewRecord {
  const data = Buffer.alloc(size, fill);
  return { op: 'write', root: 'data', path: pathName, offset, data, hash: hash64(data) };
}

export function fileRecord(pathName: string, size: number): NewRecord {
  return { op: 'file', root: 'data', path: pathName, size };
}

/** The segment files of `dir`, sorted, with their sizes on disk. */
export function segmentFiles(dir: string): { name: string; size: number }[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort()
    .map((name) => ({ name, size: fs.statSync(path.join(dir, name)).size }));
}

export function readSegment(dir: string, name: string): Buffer {
  return fs.readFileSync(path.join(dir, name));
}
