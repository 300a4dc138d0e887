// The metadata records carry besides content: the owner (numeric ids, and the names the active
// knows them by, for `replication.owners: names`) and the extended attributes (POSIX ACLs
// included). Every field is optional: records journaled before they existed decode as before
// and leave the passive's owner and attributes as they are. Shapes only; what the passive
// does with them is the applier's (docs/replication.md, "What is replicated").

/** One extended attribute: its full name ("user.mime_type", "system.posix_acl_access") and value. */
export type Xattr = [name: string, value: Uint8Array];

export interface OwnerFields {
  uid?: number;
  gid?: number;
  /** The owner's and group's names on the active, when it has names for them. */
  user?: string;
  group?: string;
}

export interface MetaFields extends OwnerFields {
  /** Exactly these replicated attributes, sorted by name (absent: leave them as they are). */
  xattrs?: Xattr[];
  /**
   * The active's names of the ids in the named entries (user:ID, group:ID) of the POSIX ACLs
   * among `xattrs`, for `replication.owners: names`: the passive gives each entry the id of the
   * same name there, and drops an entry whose id came without a name (docs/replication.md).
   * Absent when the active does not map owners by name. An older passive ignores it.
   */
  aclNames?: AclNames;
}

/** [id, name] pairs, sorted by id, each id once. */
export interface AclNames {
  users?: [id: number, name: string][];
  groups?: [id: number, name: string][];
}

/**
 * At most this many names per kind in one record: more distinct users than any ACL a file
 * system keeps in practice (ext4 fits about 500 entries in its block). Entries past it go
 * without a name, so the passive drops them.
 */
export const MAX_ACL_NAMES = 1024;

/** Linux's own limits (XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX). */
export const MAX_XATTR_NAME_BYTES = 255;
export const MAX_XATTR_VALUE_BYTES = 64 * 1024;
export const MAX_XATTR_LIST_BYTES = 64 * 1024;
/** At most this many attributes per path. */
export const MAX_XATTRS = 1024;
/** The largest id: (uid_t)-1 means "unchanged" to chown and is never a real owner. */
export const MAX_OWNER_ID = 0xfffffffe;

/**
 * The attributes Tandem replicates: every namespace a process can set (user; trusted and
 * security, which only root can, as rsync -X does) and the two POSIX ACLs. Other system.* names
 * (NFSv4 ACLs, ext4's inline data) belong to the file system.
 */
export function isReplicatedXattr(name: string): boolean {
  return (
    name.startsWith('user.') ||
    name.startsWith('trusted.') ||
    name.startsWith('security.') ||
    name === 'system.posix_acl_access' ||
    name === 'system.posix_acl_default'
  );
}

const isId = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_OWNER_ID;
// A user or group name as passwd(5) can hold one: no colon, no control characters.
const isName = (v: unknown): boolean => typeof v === 'string' && v.length > 0 && v.length <= 256 && !/[:\x00-\x1f\x7f]/.test(v);

/** Why a decoded attribute list is not one Tandem would send; undefined when it is fine. */
export function xattrsProblem(v: unknown): string | undefined {
  if (!Array.isArray(v)) return 'not a list';
  if (v.length > MAX_XATTRS) return 'too many';
  // Most files have none: no set made for them (every meta record passes here, on both agents).
  if (v.length === 0) return undefined;
  let listBytes = 0;
  const seen = new Set<string>();
  for (const x of v) {
    if (!Array.isArray(x) || x.length !== 2) return 'not a [name, value] pair';
    const [name, value] = x as unknown[];
    if (typeof name !== 'string' || !isReplicatedXattr(name) || name.includes('\0')) return 'bad name';
    const nb = Buffer.byteLength(name);
    if (nb > MAX_XATTR_NAME_BYTES) return 'name too long';
    if (seen.has(name)) return 'duplicate name';
    seen.add(name);
    listBytes += nb + 1;
    if (!(value instanceof Uint8Array) || value.length > MAX_XATTR_VALUE_BYTES) return 'bad value';
  }
  return listBytes > MAX_XATTR_LIST_BYTES ? 'list too long' : undefined;
}

/** Why a decoded `aclNames` is not one Tandem would send; undefined when it is fine. */
export function aclNamesProblem(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a map';
  const r = v as Record<string, unknown>;
  for (const kind of ['users', 'groups'] as const) {
    const list = r[kind];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return `${kind}: not a list`;
    if (list.length > MAX_ACL_NAMES) return `${kind}: too many`;
    let last = -1;
    for (const pair of list) {
      if (!Array.isArray(pair) || pair.length !== 2 || !isId(pair[0]) || !isName(pair[1])) return `${kind}: not an [id, name] pair`;
      if ((pair[0] as number) <= last) return `${kind}: ids not sorted or repeated`;
      last = pair[0] as number;
    }
  }
  return undefined;
}

/** Why the owner and attribute fields of a decoded record or entry are malformed; undefined when absent or fine. */
export function metaFieldsProblem(r: Record<string, unknown>): string | undefined {
  if ((r.uid !== undefined && !isId(r.uid)) || (r.gid !== undefined && !isId(r.gid))) return 'bad owner id';
  if ((r.user !== undefined && !isName(r.user)) || (r.group !== undefined && !isName(r.group))) return 'bad owner name';
  if (r.xattrs !== undefined) {
    const p = xattrsProblem(r.xattrs);
    if (p !== undefined) return `xattrs: ${p}`;
  }
  if (r.aclNames !== undefined) {
    const p = aclNamesProblem(r.aclNames);
    if (p !== undefined) return `aclNames: ${p}`;
  }
  return undefined;
}
