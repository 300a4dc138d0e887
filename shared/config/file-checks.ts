// The checks of tandem.yaml that need the disk, made once at agent start-up (the CLI reads the
// same file without them): nothing Tandem trusts may sit where the active's own replication, or
// another local user, could change it. OpenSSH's StrictModes and PostgreSQL's refusal of a
// loose data directory are the models: refuse to start, naming the key, rather than run on a
// file someone else could have written.
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';
import type { ConfigProblem } from './config-problems.ts';
import { configError, type TandemConfig } from './load.ts';

/** `p` resolved through every symlink that exists: the real path of its longest existing prefix, then the rest. */
export function realPathOf(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return abs;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

function isInsideOrAt(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Users whose files the agent may trust: root and the agent's own user. */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === (process.geteuid?.() ?? 0);
}

/**
 * Why a directory on the way to `p` would let another user replace what lies below it, or
 * undefined. A directory writable by group or others is refused unless it has the sticky bit
 * (like /tmp: nobody can rename or delete another user's entry in it); one owned by another
 * user is refused whatever its mode (its owner can chmod it). Both the path as written and its
 * real path are walked: a symlink on the way must be as safe as what it leads to.
 */
export function unsafeAncestor(p: string): string | undefined {
  for (const chain of new Set([path.resolve(p), realPathOf(p)])) {
    let dir = path.dirname(chain);
    for (;;) {
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(dir);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') return `cannot inspect ${dir}: ${(err as Error).message}`;
      }
      if (st?.isDirectory() === true) {
        if (!trustedOwner(st.uid)) return `${dir} belongs to uid ${st.uid}, another user than root or this agent's`;
        if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) return `${dir} is writable by ${(st.mode & 0o020) !== 0 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)}) without the sticky bit`;
      }
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return undefined;
}

/**
 * Refuses (TANDEM_ERR_CONFIG_INVALID naming every key at fault) what configFileProblems finds;
 * the agent calls it at start-up, before it creates anything.
 */
export function checkConfigFiles(c: TandemConfig): void {
  const problems = configFileProblems(c);
  if (problems.length > 0) throw configError(c.file ?? '(in memory)', problems);
}

/**
 * A state directory, key file, log file or script that lies inside a protected root once
 * symlinks are resolved (the lexical case is refused by parseConfig already), or that sits
 * below a directory other users can write; a script that is not a regular file owned by root
 * or this agent's user, or is writable by its group or others. A missing script is not a
 * problem here: the runner reports it when it runs. `tandem config check` lists these too.
 */
export function configFileProblems(c: TandemConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const problem = (key: string, message: string) => problems.push({ key, message });
  const roots = c.protect.map((r) => ({ name: r.name, real: realPathOf(r.path) }));
  const own: { key: string; path: string }[] = [
    { key: 'stateDir', path: c.stateDir },
    { key: 'keyFile', path: c.keyFile },
    ...(c.log.file === undefined ? [] : [{ key: 'log.file', path: c.log.file }]),
    { key: 'scripts.start', path: c.scripts.start },
    { key: 'scripts.stop', path: c.scripts.stop },
    { key: 'scripts.check', path: c.scripts.check },
  ];
  for (const o of own) {
    const real = realPathOf(o.path);
    const root = roots.find((r) => isInsideOrAt(real, r.real));
    if (root !== undefined) {
      problem(o.key, `${o.path} lies inside protected root "${root.name}" (${root.real}) once symlinks are resolved: replication could change it; keep Tandem's own files outside what it replicates`);
      continue;
    }
    const why = unsafeAncestor(o.path);
    if (why !== undefined) problem(o.key, `${o.path} could be replaced by another user: ${why}; make the directories above it writable by root alone (chmod go-w)`);
  }
  for (const name of ['start', 'stop', 'check'] as const) {
    const file = c.scripts[name];
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') problem(`scripts.${name}`, `cannot inspect ${file}: ${(err as Error).message}`);
      continue;
    }
    if (!st.isFile()) problem(`scripts.${name}`, `${file} is not a regular file`);
    else if (!trustedOwner(st.uid)) problem(`scripts.${name}`, `${file} belongs to uid ${st.uid}: the agent runs it, so it must belong to root or to the agent's user (chown root ${file})`);
    else if ((st.mode & 0o022) !== 0) {
      problem(`scripts.${name}`, `${file} is writable by ${(st.mode & 0o020) !== 0 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)}): anyone who can write it runs code as the agent (chmod go-w ${file})`);
    }
  }
  return problems;
}
