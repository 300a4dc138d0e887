// What a verification has done so far, persisted in the state directory so that an
// interrupted one (the agent stopped or crashed, the passive went away) resumes at its cursor
// instead of starting over. Written atomically (temp file, rename); a damaged or foreign file
// is ignored: the next verification simply starts from the beginning.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_FILE_MODE } from '../../shared/constants.ts';
import type { DifferenceKind } from './difference.ts';
import type { Cursor } from './path-order.ts';

export interface VerifyDifference {
  root: string;
  path: string;
  what: DifferenceKind;
  /** Differing blocks of a file present on both sides. */
  blocks: number;
  /** Set once --repair journaled the fix and the passive acknowledged it. */
  repaired?: boolean;
}

export type VerifyPhase = 'walking' | 'rechecking' | 'repairing' | 'done' | 'failed';

export interface VerifyRecord {
  format: 1;
  id: string;
  repair: boolean;
  /** The active's generation: a cursor means nothing once another node was active. */
  generation: string;
  phase: VerifyPhase;
  startedAt: number;
  finishedAt: number | null;
  cursor: Cursor;
  pathsDone: number;
  bytesDone: number;
  /** Paths that differed once and are compared again before they count. */
  suspects: { root: string; path: string; seen: number }[];
  differences: VerifyDifference[];
  /** Paths that kept changing while compared: not differences, not verified either. */
  changing: string[];
  bytesRepaired: number;
  /** pathsDone when this verification last resumed after an interruption (null: never). */
  resumedAt: number | null;
  error: { code: string; message: string; hint?: string } | null;
}

export const VERIFY_FILE = 'verify.json';

export function newRecord(id: string, repair: boolean, generation: string, now: number): VerifyRecord {
  return {
    format: 1,
    id,
    repair,
    generation,
    phase: 'walking',
    startedAt: now,
    finishedAt: null,
    cursor: { rootIndex: 0, path: undefined },
    pathsDone: 0,
    bytesDone: 0,
    suspects: [],
    differences: [],
    changing: [],
    bytesRepaired: 0,
    resumedAt: null,
    error: null,
  };
}

/** The record in `stateDir`, or undefined when there is none or it is not one of ours. */
export async function loadRecord(stateDir: string): Promise<VerifyRecord | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(stateDir, VERIFY_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const r = JSON.parse(text) as VerifyRecord;
    if (r.format !== 1 || typeof r.id !== 'string' || typeof r.cursor?.rootIndex !== 'number' || !Array.isArray(r.differences)) return undefined;
    // JSON has no undefined: a cursor before the first path comes back as null.
    r.cursor = { rootIndex: r.cursor.rootIndex, path: typeof r.cursor.path === 'string' ? r.cursor.path : undefined };
    return r;
  } catch {
    return undefined;
  }
}

export async function saveRecord(stateDir: string, r: VerifyRecord): Promise<void> {
  const file = path.join(stateDir, VERIFY_FILE);
  const tmp = `${file}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(r), { mode: PRIVATE_FILE_MODE });
  await fsp.rename(tmp, file);
}
