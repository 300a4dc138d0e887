// The metadata of one entry as records and manifests carry it, read from the disk: owner (ids
// and, where this node has them, names) and replicated extended attributes. One reader for
// capture, the synchronisation, verify and the passive's manifest, so all compare alike.
import type { Stats } from 'node:fs';
import type { AclNames, OwnerFields, Xattr } from '../../shared/protocol/index.ts';
import { aclNamesOf } from './acl-names.ts';
import { readXattrs, xattrsHash } from './xattrs.ts';

export interface UserNames {
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
}

/** uid and gid, and their names when `users` knows them (no undefined fields: records stay small). */
export function ownerFieldsOf(st: { uid: number; gid: number }, users: UserNames | undefined): OwnerFields {
  const out: OwnerFields = { uid: st.uid, gid: st.gid };
  const user = users?.userName(st.uid);
  const group = users?.groupName(st.gid);
  if (user !== undefined) out.user = user;
  if (group !== undefined) out.group = group;
  return out;
}

export interface DiskMeta {
  owner: OwnerFields;
  /** Files and directories: the replicated attributes, sorted by name ([] for none). */
  xattrs: Xattr[];
  xattrHash: Buffer | undefined;
  /** The names of the ids of the ACLs' named entries, when this node maps owners by name (acl-names.ts). */
  aclNames?: AclNames;
  /** Attributes listed but not readable (gone meanwhile, or refused). */
  unreadable: string[];
}

/**
 * The owner of `st` and the attributes of the entry at `at` (a /proc/self/fd/N/name path: its
 * last component is not followed). Symbolic links carry no attributes here: user.* cannot be
 * set on a link, and what else might be is not replicated.
 */
export function readEntryMeta(at: string, st: Stats, users: UserNames | undefined): DiskMeta {
  const owner = ownerFieldsOf(st, users);
  if (st.isSymbolicLink()) return { owner, xattrs: [], xattrHash: undefined, unreadable: [] };
  const { xattrs, unreadable } = readXattrs(at);
  const aclNames = aclNamesOf(xattrs);
  return { owner, xattrs, xattrHash: xattrsHash(xattrs), unreadable, ...(aclNames === undefined ? {} : { aclNames }) };
}

/** The record field that carries `aclNames`, or nothing (records stay small). */
export function aclNamesField(m: { aclNames?: AclNames | undefined }): { aclNames?: AclNames } {
  return m.aclNames === undefined ? {} : { aclNames: m.aclNames };
}

/** Two attribute hashes (undefined: none) describe the same attributes. */
export function sameXattrHash(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
