// A POSIX ACL as Linux stores it in system.posix_acl_access / system.posix_acl_default: a
// little-endian u32 version (2), then 8-byte entries (u16 tag, u16 perm, u32 id). Only the named
// entries (ACL_USER, ACL_GROUP) carry an id that means someone; with `replication.owners: names`
// the passive rewrites those by name (acl-names.ts). Pure: bytes in, bytes out. The kernel takes
// an ACL only with its entries sorted by tag, then id, so whatever is encoded here is sorted.

export const ACL_XATTRS: readonly string[] = ['system.posix_acl_access', 'system.posix_acl_default'];
export const ACL_VERSION = 2;
export const ACL_USER_OBJ = 0x01;
export const ACL_USER = 0x02;
export const ACL_GROUP_OBJ = 0x04;
export const ACL_GROUP = 0x08;
export const ACL_MASK = 0x10;
export const ACL_OTHER = 0x20;
/** The id of the entries that name nobody (owner, owning group, mask, other). */
export const ACL_UNDEFINED_ID = 0xffffffff;
const TAGS = new Set([ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER]);
const HEADER_BYTES = 4;
const ENTRY_BYTES = 8;

export interface AclEntry {
  tag: number;
  perm: number;
  id: number;
}

export function isAclXattr(name: string): boolean {
  return ACL_XATTRS.includes(name);
}

/** The entries of an ACL attribute value, or undefined when it is not one (bad version, length or tag). */
export function parseAcl(value: Uint8Array): AclEntry[] | undefined {
  if (value.length < HEADER_BYTES || (value.length - HEADER_BYTES) % ENTRY_BYTES !== 0) return undefined;
  const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
  if (v.getUint32(0, true) !== ACL_VERSION) return undefined;
  const out: AclEntry[] = [];
  for (let off = HEADER_BYTES; off < value.length; off += ENTRY_BYTES) {
    const tag = v.getUint16(off, true);
    if (!TAGS.has(tag)) return undefined;
    out.push({ tag, perm: v.getUint16(off + 2, true), id: v.getUint32(off + 4, true) });
  }
  return out;
}

/** The named entries: the only ones whose id means a user or a group. */
export function isNamedEntry(e: AclEntry): boolean {
  return e.tag === ACL_USER || e.tag === ACL_GROUP;
}

/**
 * The attribute value of `entries`, sorted by tag then id as the kernel requires. Two named
 * entries that came to share an id (two names of the active that are one user here) become
 * one with only the permissions both had: never more than either name was given.
 */
export function encodeAcl(entries: readonly AclEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => a.tag - b.tag || a.id - b.id);
  const merged: AclEntry[] = [];
  for (const e of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last.tag === e.tag && last.id === e.id) last.perm &= e.perm;
    else merged.push({ ...e });
  }
  const out = Buffer.alloc(HEADER_BYTES + merged.length * ENTRY_BYTES);
  out.writeUInt32LE(ACL_VERSION, 0);
  merged.forEach((e, i) => {
    const off = HEADER_BYTES + i * ENTRY_BYTES;
    out.writeUInt16LE(e.tag, off);
    out.writeUInt16LE(e.perm, off + 2);
    out.writeUInt32LE(e.id >>> 0, off + 4);
  });
  return out;
}
