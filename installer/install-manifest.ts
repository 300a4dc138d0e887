// What an install created, so that uninstall removes exactly that ("no residues", the Neverfail
// reviewers' praise) and nothing else: every directory, file and link in creation order, written
// next to the state (/var/lib/tandem/install-manifest.json). The recorder never overwrites: a
// file that exists already stops the install (nothing is replaced silently), and an install that
// fails half way removes what it had created.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TandemError, errnoOf } from '../shared/errors.ts';

export interface ManifestEntry {
  kind: 'dir' | 'file' | 'symlink';
  /** Absolute, under the install root. */
  path: string;
  mode?: number;
  /** Directories: everything inside is Tandem's (state, logs, pid files) and goes with it. */
  owned?: boolean;
  /** A protected directory (or a parent of one) the install created: its data stays. */
  keep?: boolean;
  /** Files: sha256 of the content written, to say which ones were edited since. */
  sha256?: string;
}

export interface InstallManifest {
  format: 1;
  tandem: string;
  pair: string;
  node: string;
  role: 'primary' | 'secondary';
  root: string;
  createdAt: string;
  /** The node's application modules as installed: tandem check reads them. */
  modules: unknown[];
  fence?: string;
  entries: ManifestEntry[];
}

const installError = (op: string, reason: string, hint: string) => new TandemError({ code: 'TANDEM_ERR_INSTALL_FAILED', op, reason, hint });

export class InstallRecorder {
  readonly entries: ManifestEntry[] = [];

  /** Creates `dir` and each missing parent; records the ones it made. */
  mkdirp(dir: string, mode: number, opts: { owned?: boolean; keep?: boolean } = {}): void {
    const missing: string[] = [];
    for (let d = dir; ; d = path.dirname(d)) {
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(d);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw TandemError.wrap(err, { code: 'TANDEM_ERR_INSTALL_FAILED', op: `create ${dir}`, hint: 'check the path and its permissions' });
      }
      if (st !== undefined) {
        if (!st.isDirectory()) throw installError(`create ${dir}`, `${d} exists and is not a directory`, `move ${d} away, or choose another path`);
        break;
      }
      missing.unshift(d);
      if (path.dirname(d) === d) break;
    }
    for (const d of missing) {
      const isTarget = d === dir;
      const m = isTarget ? mode : 0o755;
      try {
        fs.mkdirSync(d, { mode: m });
        fs.chmodSync(d, m); // the umask must not decide: the state directory is 0700
      } catch (err) {
        throw TandemError.wrap(err, { code: 'TANDEM_ERR_INSTALL_FAILED', op: `create ${d}`, hint: 'check the path and its permissions' });
      }
      this.entries.push({ kind: 'dir', path: d, mode: m, ...(isTarget && opts.owned === true ? { owned: true } : {}), ...(opts.keep === true ? { keep: true } : {}) });
    }
  }

  /** Writes a new file; refuses to replace an existing one. */
  writeFile(file: string, content: string | Buffer, mode: number): void {
    try {
      fs.writeFileSync(file, content, { mode, flag: 'wx' });
      fs.chmodSync(file, mode);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') throw installError(`write ${file}`, 'the file exists already; tandem install never replaces a file', `a node is installed here already (tandem uninstall removes it), or move ${file} away`);
      throw TandemError.wrap(err, { code: 'TANDEM_ERR_INSTALL_FAILED', op: `write ${file}`, hint: 'check the path and its permissions' });
    }
    this.entries.push({ kind: 'file', path: file, mode, sha256: sha256(content) });
  }

  symlink(link: string, target: string): void {
    try {
      fs.symlinkSync(target, link);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') throw installError(`link ${link}`, 'it exists already', `tandem uninstall removes an earlier install, or move ${link} away`);
      throw TandemError.wrap(err, { code: 'TANDEM_ERR_INSTALL_FAILED', op: `link ${link}`, hint: 'check the path and its permissions' });
    }
    this.entries.push({ kind: 'symlink', path: link });
  }

  /** After a failure: removes what this recorder created, newest first. */
  rollback(): void {
    removeEntries(this.entries, undefined, { rollback: true });
  }
}

export function sha256(content: string | Buffer): string {
  return crypto.createHash('sha256').update(content).digest('hex');
}

export function writeManifest(file: string, manifest: InstallManifest): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The manifest of the install under a root, or undefined when none was made there. */
export function readManifest(file: string): InstallManifest | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw TandemError.wrap(err, { code: 'TANDEM_ERR_INSTALL_FAILED', op: `read ${file}`, hint: 'check the path and its permissions' });
  }
  let m: InstallManifest;
  try {
    m = JSON.parse(text) as InstallManifest;
  } catch {
    throw installError(`read ${file}`, 'the install manifest is damaged', 'remove the files it lists by hand (docs/install.md, "Uninstall")');
  }
  if (m.format !== 1 || !Array.isArray(m.entries)) throw installError(`read ${file}`, 'not an install manifest of this release', 'uninstall with the release that installed it');
  return m;
}

export interface RemovalReport {
  removed: string[];
  /** Paths left in place, each with why. */
  kept: { path: string; why: string }[];
}

/**
 * Removes the entries newest first: links and files; directories when Tandem owns their
 * contents, or when empty. A directory marked keep (protected data) and anything outside the
 * entries are left alone.
 */
export function removeEntries(entries: ManifestEntry[], root?: string, opts: { rollback?: boolean } = {}): RemovalReport {
  const report: RemovalReport = { removed: [], kept: [] };
  for (const e of [...entries].reverse()) {
    // A manifest names paths under its own root only: anything else was not written by install.
    if (root !== undefined && !isWithin(e.path, root)) {
      report.kept.push({ path: e.path, why: 'outside the install root; not removed' });
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.lstatSync(e.path);
    } catch {
      continue; // already gone
    }
    // A rollback removes a protected directory it just made if nothing arrived in it yet.
    if (e.keep === true && !(opts.rollback === true && st.isDirectory() && fs.readdirSync(e.path).length === 0)) {
      report.kept.push({ path: e.path, why: 'protected data' });
      continue;
    }
    try {
      if (e.kind === 'symlink' || e.kind === 'file') {
        if (st.isDirectory()) {
          report.kept.push({ path: e.path, why: 'was a file when installed and is a directory now' });
          continue;
        }
        fs.unlinkSync(e.path);
        report.removed.push(e.path);
      } else if (!st.isDirectory()) {
        report.kept.push({ path: e.path, why: 'was a directory when installed and is not one now' });
      } else if (e.owned === true) {
        fs.rmSync(e.path, { recursive: true, force: true });
        report.removed.push(e.path);
      } else {
        const left = fs.readdirSync(e.path);
        if (left.length === 0) {
          fs.rmdirSync(e.path);
          report.removed.push(e.path);
        } else report.kept.push({ path: e.path, why: `holds files tandem install did not create: ${left.slice(0, 5).join(', ')}${left.length > 5 ? ', …' : ''}` });
      }
    } catch (err) {
      report.kept.push({ path: e.path, why: `could not remove: ${(err as Error).message}` });
    }
  }
  return report;
}

function isWithin(p: string, root: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}
