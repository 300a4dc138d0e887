// Signals and liveness for a script's process group. Each script runs as the leader of its
// own group, so a timed-out script is killed with everything it spawned, and a signal sent to
// the agent from a terminal never reaches it.
//
// kill(pid, 0) alone is not a liveness test: it succeeds for a zombie, and an init that never
// reaps orphans (some containers and micro-VMs) keeps every killed grandchild as one forever.
// A zombie holds no address, port or file, so here it counts as gone (read from /proc on Linux).
import fs from 'node:fs';
import { errnoOf } from '../../shared/errors.ts';

const HAVE_PROC = fs.existsSync('/proc/self/stat');

/** Sends `signal` to every process of group `pgid`; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return false;
    throw err;
  }
}

/** Whether group `pgid` still has a member that is not a zombie. */
export async function groupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
  if (!HAVE_PROC) return true; // trust kill(2)
  let entries: string[];
  try {
    entries = await fs.promises.readdir('/proc');
  } catch {
    return true;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const stat = procStat(Number(e));
    if (stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z') return true;
  }
  return false;
}

/** Whether process `pid` exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
  if (!HAVE_PROC) return true;
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** State and process group from /proc/PID/stat; undefined without /proc or once it is gone. */
function procStat(pid: number): { state: string; pgrp: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so cut at the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', pgrp: Number(fields[2]) };
}
