// Reads the scripts log the demo's generated scripts append to (one line per event:
// "<iso time> <node> <script> <event> [<reason>]"), and checks it for the one thing that must
// never happen: two nodes serving at once. The scripts write it themselves, so it tells the
// truth even when an agent was killed before it could log anything.
import fs from 'node:fs';
import { TandemError, errnoOf } from '../../shared/errors.ts';

export interface ScriptsLogEntry {
  at: string;
  node: string;
  script: string;
  /** begin, ok, failed, already-running, fence… */
  event: string;
  /** TANDEM_REASON of the run (start and stop lines); may contain spaces. */
  reason?: string;
}

/** The entries in the order they were appended; no file yet means no script ran. */
export function readScriptsLog(file: string): ScriptsLogEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw TandemError.wrap(err, { code: 'TANDEM_ERR_STATE_IO', op: `read scripts log ${file}`, hint: 'check the path and its permissions' });
  }
  return parseScriptsLog(text);
}

/** Lines with fewer than four fields (a line torn by a crash mid-write) are skipped. */
export function parseScriptsLog(text: string): ScriptsLogEntry[] {
  const out: ScriptsLogEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+) (\S+) (\S+)(?: (.*))?$/.exec(line.trimEnd());
    if (m === null) continue;
    const [, at, node, script, event, reason] = m as unknown as [string, string, string, string, string, string | undefined];
    out.push({ at, node, script, event, ...(reason === undefined || reason === '' ? {} : { reason }) });
  }
  return out;
}

/**
 * Every moment one node began to serve while another still did, in words (empty when the log
 * is clean). A node serves from its `start begin` (or `start already-running`) until its
 * `stop ok` or `start failed` (a failed start removes what it started; a start that could not
 * fence its peer says `fence-failed` instead and changes nothing). Counting from `begin`
 * rather than `ok` is the strict reading: the address may be taken any time after it.
 */
export function overlappingStarts(entries: ScriptsLogEntry[]): string[] {
  const serving = new Map<string, ScriptsLogEntry>();
  const problems: string[] = [];
  for (const e of entries) {
    if (e.script === 'start' && (e.event === 'begin' || e.event === 'already-running')) {
      for (const [node, since] of serving) {
        if (node === e.node) continue;
        problems.push(`${e.at}: ${e.node} started (start ${e.event}${e.reason === undefined ? '' : `, ${e.reason}`}) while ${node} served since ${since.at} without a stop`);
      }
      if (!serving.has(e.node)) serving.set(e.node, e);
    } else if ((e.script === 'stop' && e.event === 'ok') || (e.script === 'start' && e.event === 'failed')) {
      serving.delete(e.node);
    }
  }
  return problems;
}
