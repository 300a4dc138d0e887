// Extended attributes, and through them POSIX ACLs (system.posix_acl_access and
// system.posix_acl_default are xattrs). Node has none of the xattr calls; @napi-rs/xattr is a
// small maintained N-API module shipped prebuilt in the registry (no compiler, no install
// script) whose calls are the l* ones: the last component of a path is never followed. If it
// does not load (an architecture without a prebuilt binary), nothing here throws: `xattrSupport`
// says why, and capture and apply raise TANDEM_ERR_XATTR_UNAPPLIED instead of losing attributes
// silently.
import os from 'node:os';
import { createRequire } from 'node:module';
import { describeCause } from '../../shared/errors.ts';
import { hash64 } from '../../shared/hash.ts';
import { isReplicatedXattr, type Xattr } from '../../shared/protocol/metadata.ts';
import { aclHashForm } from './acl-names.ts';

export type { Xattr } from '../../shared/protocol/metadata.ts';

interface XattrApi {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
  setAttributeSync(path: string, name: string, value: Uint8Array): void;
  removeAttributeSync(path: string, name: string): void;
}

let api: XattrApi | undefined;
let loadProblem: string | undefined;
try {
  api = createRequire(import.meta.url)('@napi-rs/xattr') as XattrApi;
} catch (err) {
  loadProblem = `the module @napi-rs/xattr did not load (${describeCause(err)})`;
}

/** Undefined when extended attributes can be read and written here; otherwise why not. */
export function xattrProblem(): string | undefined {
  return loadProblem;
}

/** Tests only: behave as if the module had not loaded. */
export function disableXattrsForTests(reason: string | undefined): void {
  loadProblem = reason;
}

/** File capabilities: a privilege as strong as setuid, granted with its owner or not at all. */
export const CAPABILITY_XATTR = 'security.capability';

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));

/** The errno name inside one of the module's messages ("Operation not permitted (os error 1)"). */
export function xattrErrno(err: unknown): string {
  const m = /os error (\d+)/.exec(err instanceof Error ? err.message : String(err));
  return m === null ? 'EIO' : (ERRNO_NAMES.get(Number(m[1])) ?? `E${m[1]}`);
}

/** "No support here": the file system (or the kind of file) takes no attributes at all. */
function unsupported(errno: string): boolean {
  return errno === 'EOPNOTSUPP' || errno === 'ENOTSUP';
}

export interface XattrRead {
  /** Sorted by name. */
  xattrs: Xattr[];
  /** Names listed but not readable (removed meanwhile, or refused). */
  unreadable: string[];
}

/**
 * The replicated attributes of the entry at `path` (l* calls: its last component is not
 * followed). None when the module is missing or the file system takes no attributes; throws
 * with the errno (err.code) on any other failure, ENOENT included.
 */
export function readXattrs(path: string): XattrRead {
  if (api === undefined) return { xattrs: [], unreadable: [] };
  let names: string[];
  try {
    names = api.listAttributesSync(path);
  } catch (err) {
    const errno = xattrErrno(err);
    if (unsupported(errno)) return { xattrs: [], unreadable: [] };
    throw Object.assign(new Error(`list extended attributes: ${errno}`), { code: errno });
  }
  const xattrs: Xattr[] = [];
  const unreadable: string[] = [];
  if (names.length === 0) return { xattrs, unreadable };
  for (const name of names.filter(isReplicatedXattr).sort()) {
    // The module answers null both for "not there" and for any error: a name just listed and
    // unreadable now was removed meanwhile or is refused; either way it is not sent.
    const v = api.getAttributeSync(path, name);
    if (v === null) unreadable.push(name);
    else xattrs.push([name, v]);
  }
  return { xattrs, unreadable };
}

export interface XattrWrite {
  /** Attributes that could not be set or removed, with the errno. */
  failed: { name: string; errno: string }[];
  /** Attributes the path had that were not wanted (removed, or in `failed`). */
  removed: number;
}

/**
 * Makes the replicated attributes at `path` exactly `want`: sets each (when its value differs)
 * and removes the others. Per-name failures are returned, never thrown: one refused attribute
 * (a security.* label the passive's policy rejects) must not keep the others off.
 */
export function writeXattrs(path: string, want: readonly Xattr[]): XattrWrite {
  const failed: XattrWrite['failed'] = [];
  if (api === undefined) {
    return { failed: want.map(([name]) => ({ name, errno: 'ENOSYS' })), removed: 0 };
  }
  let have: string[];
  try {
    have = api.listAttributesSync(path).filter(isReplicatedXattr);
  } catch (err) {
    const errno = xattrErrno(err);
    if (!unsupported(errno)) throw Object.assign(new Error(`list extended attributes: ${errno}`), { code: errno });
    return { failed: want.map(([name]) => ({ name, errno })), removed: 0 };
  }
  const wanted = new Set(want.map(([n]) => n));
  let removed = 0;
  for (const name of have) {
    if (wanted.has(name)) continue;
    removed++;
    try {
      api.removeAttributeSync(path, name);
    } catch (err) {
      const errno = xattrErrno(err);
      if (errno !== 'ENODATA') failed.push({ name, errno });
    }
  }
  for (const [name, value] of want) {
    if (have.includes(name)) {
      const cur = api.getAttributeSync(path, name);
      if (cur !== null && cur.equals(value)) continue;
    }
    try {
      api.setAttributeSync(path, name, value);
    } catch (err) {
      failed.push({ name, errno: xattrErrno(err) });
    }
  }
  return { failed, removed };
}

/** `dir` (a directory's path) has a default ACL, which files created in it inherit. False when attributes cannot be read here. */
export function hasDefaultAcl(dir: string): boolean {
  return api !== undefined && api.getAttributeSync(dir, 'system.posix_acl_default') !== null;
}

/**
 * xxhash64 of the attributes in a canonical form (sorted by name, each name and value
 * length-prefixed): what manifests keep and compare. Undefined for none, so a file without
 * attributes costs nothing in a manifest. When this node maps owners by name, a POSIX ACL is
 * hashed with its ids replaced by their names (acl-names.ts): the passive's ACL holds its own
 * ids for the same names, and must compare equal.
 */
export function xattrsHash(list: readonly Xattr[]): Buffer | undefined {
  if (list.length === 0) return undefined;
  const sorted = [...list].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const parts: Buffer[] = [];
  for (const [name, raw] of sorted) {
    const value = aclHashForm(name, raw) ?? raw;
    const n = Buffer.from(name);
    const head = Buffer.allocUnsafe(6);
    head.writeUInt16LE(n.length, 0);
    head.writeUInt32LE(value.length, 2);
    parts.push(head, n, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
  return hash64(Buffer.concat(parts));
}
