// The named entries of POSIX ACLs under `replication.owners: names`. The ACL attributes carry
// numeric ids, and uid 1001 may be alice on the active and bob on the passive: sent as bytes,
// `user:alice:rwx` would grant bob. So the active sends the names of those ids with the record
// (`aclNames`), the passive rewrites each entry to the id of the same name there and DROPS an
// entry whose name it does not know (or that came without one): deny, never grant to whoever
// holds that number here. Equality follows the same terms: with names, both nodes hash an ACL
// with its ids replaced by their names, so a correctly mapped ACL compares equal and a wrong
// one does not.
import type { AclNames, Xattr } from '../../shared/protocol/metadata.ts';
import { MAX_ACL_NAMES } from '../../shared/protocol/metadata.ts';
import { ACL_USER, encodeAcl, isAclXattr, isNamedEntry, parseAcl, type AclEntry } from './posix-acl.ts';
import type { OwnerLookup } from './owner-policy.ts';

/** Id to name, both kinds (the shape of UserDb and of a record's aclNames alike). */
export interface IdNames {
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
}

/**
 * This node's names, when it maps owners by name (set once at start from replication.owners);
 * undefined: ACLs are sent and compared as their bytes. One setting for the whole process, so
 * that capture, the synchronisation, the applier, the manifests and verify all hash alike.
 */
let nodeNames: IdNames | undefined;

export function useAclNames(names: IdNames | undefined): void {
  nodeNames = names;
}

export function aclNaming(): IdNames | undefined {
  return nodeNames;
}

/**
 * The names of the ids in the named entries of the ACLs among `xattrs`, as a record carries
 * them; undefined when there are none or this node does not map owners by name. An id without a
 * name here is left out (the passive then drops its entry).
 */
export function aclNamesOf(xattrs: readonly Xattr[], names: IdNames | undefined = nodeNames): AclNames | undefined {
  if (names === undefined) return undefined;
  const uids = new Set<number>();
  const gids = new Set<number>();
  for (const [name, value] of xattrs) {
    if (!isAclXattr(name)) continue;
    for (const e of parseAcl(value) ?? []) {
      if (isNamedEntry(e)) (e.tag === ACL_USER ? uids : gids).add(e.id);
    }
  }
  const pairs = (ids: Set<number>, nameOf: (id: number) => string | undefined): [number, string][] => {
    const out: [number, string][] = [];
    for (const id of [...ids].sort((a, b) => a - b)) {
      const n = nameOf(id);
      if (n !== undefined && out.length < MAX_ACL_NAMES) out.push([id, n]);
    }
    return out;
  };
  const users = pairs(uids, (id) => names.userName(id));
  const groups = pairs(gids, (id) => names.groupName(id));
  if (users.length === 0 && groups.length === 0) return undefined;
  const out: AclNames = {};
  if (users.length > 0) out.users = users;
  if (groups.length > 0) out.groups = groups;
  return out;
}

/** A record's aclNames as a lookup. */
export function recordNames(a: AclNames | undefined): IdNames {
  const users = new Map(a?.users ?? []);
  const groups = new Map(a?.groups ?? []);
  return { userName: (id) => users.get(id), groupName: (id) => groups.get(id) };
}

export interface LocalizedAcls {
  /** `xattrs` with each ACL's named entries given this node's ids; the other attributes as they were. */
  xattrs: Xattr[];
  /** What was dropped, in words, for the notice ("user \"carol\" does not exist here"). */
  dropped: string[];
}

/**
 * The passive's side: each named entry of each ACL among `xattrs` gets the id `lookup` has for
 * the name `sent` gives its id; an entry without a name, or whose name is unknown here, is
 * dropped. The owner, owning group, mask and other entries stay as they are, so the ACL stays
 * valid (the mask with no named entry left is still a valid ACL). An ACL value that does not
 * parse is dropped whole: its ids could not be checked.
 */
export function localizeAcls(xattrs: readonly Xattr[], sent: AclNames | undefined, lookup: OwnerLookup): LocalizedAcls {
  const names = recordNames(sent);
  const dropped: string[] = [];
  const out: Xattr[] = [];
  for (const x of xattrs) {
    const [attr, value] = x;
    if (!isAclXattr(attr)) {
      out.push(x);
      continue;
    }
    const entries = parseAcl(value);
    if (entries === undefined) {
      dropped.push(`${attr}: not a POSIX ACL`);
      continue;
    }
    const kept: AclEntry[] = [];
    for (const e of entries) {
      if (!isNamedEntry(e)) {
        kept.push(e);
        continue;
      }
      const user = e.tag === ACL_USER;
      const what = user ? 'user' : 'group';
      const name = user ? names.userName(e.id) : names.groupName(e.id);
      const local = name === undefined ? undefined : user ? lookup.uidOf(name) : lookup.gidOf(name);
      if (local === undefined) {
        dropped.push(name === undefined ? `${what}:${e.id} came without a name` : `${what} "${name}" does not exist here`);
        continue;
      }
      kept.push({ ...e, id: local });
    }
    out.push([attr, encodeAcl(kept)]);
  }
  return { xattrs: out, dropped };
}

/**
 * The form an ACL value is hashed in when this node maps owners by name: its entries with each
 * named id replaced by its name here (or kept as a number, marked apart, when it has none),
 * sorted in that form so that the order ids put them in on either node does not matter.
 * Undefined when the value is not an ACL or no naming is set (then the bytes are hashed).
 */
export function aclHashForm(attr: string, value: Uint8Array, names: IdNames | undefined = nodeNames): Buffer | undefined {
  if (names === undefined || !isAclXattr(attr)) return undefined;
  const entries = parseAcl(value);
  if (entries === undefined) return undefined;
  const parts = entries.map((e) => {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(e.tag, 0);
    head.writeUInt16LE(e.perm, 2);
    if (!isNamedEntry(e)) return Buffer.concat([head, Buffer.from([0]), u32(e.id)]);
    const n = e.tag === ACL_USER ? names.userName(e.id) : names.groupName(e.id);
    if (n === undefined) return Buffer.concat([head, Buffer.from([1]), u32(e.id)]);
    const nb = Buffer.from(n);
    const len = Buffer.alloc(2);
    len.writeUInt16LE(nb.length, 0);
    return Buffer.concat([head, Buffer.from([2]), len, nb]);
  });
  // By tag first (the bytes begin with it), then by name or number.
  parts.sort(Buffer.compare);
  return Buffer.concat([Buffer.from('acl-by-name\0'), ...parts]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}
