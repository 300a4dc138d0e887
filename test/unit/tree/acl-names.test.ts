// ACL entries by name (replication.owners: names): the active names the ids of the named
// entries, the passive rewrites them to its own ids and drops what it cannot name, and both hash
// an ACL by names so that a correctly mapped ACL compares equal and a wrong one does not.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initHash } from '../../../shared/hash.ts';
import { entryProblem } from '../../../shared/protocol/records.ts';
import { aclNamesProblem, metaFieldsProblem, MAX_ACL_NAMES, type Xattr } from '../../../shared/protocol/metadata.ts';
import { aclNamesOf, localizeAcls, useAclNames, type IdNames } from '../../../agent/tree/acl-names.ts';
import { ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_UNDEFINED_ID, ACL_USER, ACL_USER_OBJ, parseAcl } from '../../../agent/tree/posix-acl.ts';
import { xattrsHash } from '../../../agent/tree/xattrs.ts';
import type { OwnerLookup } from '../../../agent/tree/owner-policy.ts';
import { aclBytes } from './acl-bytes.ts';

const U = ACL_UNDEFINED_ID;
const ACCESS = 'system.posix_acl_access';
const DEFAULT = 'system.posix_acl_default';

/** `user:alice:rwx, user:carol:r, group:staff:r`, mask rwx, as the active's ids make it (alice 1001, carol 1002, staff 50). */
const activeAcl = aclBytes([[ACL_USER_OBJ, 7, U], [ACL_USER, 7, 1001], [ACL_USER, 4, 1002], [ACL_GROUP_OBJ, 5, U], [ACL_GROUP, 4, 50], [ACL_MASK, 7, U], [ACL_OTHER, 0, U]]);

function idNames(users: Record<number, string>, groups: Record<number, string>): IdNames {
  return { userName: (id) => users[id], groupName: (id) => groups[id] };
}
/** The active: 1001 alice, 1002 carol, 1003 dave; group 50 staff. */
const activeNames = idNames({ 1001: 'alice', 1002: 'carol', 1003: 'dave' }, { 50: 'staff' });
/** The passive: alice is 2001 and 1001 is bob; no carol; staff is 60. */
const passiveLookup: OwnerLookup = {
  uidOf: (n) => ({ alice: 2001, bob: 1001, dave: 900 })[n],
  gidOf: (n) => ({ staff: 60 })[n],
};
const passiveNames = idNames({ 2001: 'alice', 1001: 'bob', 900: 'dave' }, { 60: 'staff' });

const named = (v: Uint8Array, tag: number) =>
  parseAcl(v)!
    .filter((e) => e.tag === tag)
    .map((e) => [e.id, e.perm]);

beforeAll(async () => {
  await initHash();
});

afterEach(() => useAclNames(undefined));

describe('acl names', () => {
  it('the active names the ids of the named entries of both ACLs, sorted, each once', () => {
    const dflt = aclBytes([[ACL_USER_OBJ, 7, U], [ACL_USER, 5, 1003], [ACL_USER, 5, 1001], [ACL_GROUP_OBJ, 5, U], [ACL_MASK, 7, U], [ACL_OTHER, 0, U]]);
    expect(aclNamesOf([[ACCESS, activeAcl], [DEFAULT, dflt], ['user.x', Buffer.from('1001')]], activeNames)).toEqual({
      users: [
        [1001, 'alice'],
        [1002, 'carol'],
        [1003, 'dave'],
      ],
      groups: [[50, 'staff']],
    });
  });

  it('the active sends nothing when it does not map owners by name, when no entry is named, and leaves out an id it has no name for', () => {
    expect(aclNamesOf([[ACCESS, activeAcl]], undefined)).toBeUndefined();
    expect(aclNamesOf([[ACCESS, aclBytes([[ACL_USER_OBJ, 6, U], [ACL_GROUP_OBJ, 4, U], [ACL_OTHER, 4, U]])]], activeNames)).toBeUndefined();
    expect(aclNamesOf([[ACCESS, aclBytes([[ACL_USER_OBJ, 7, U], [ACL_USER, 7, 4242], [ACL_USER, 7, 1001], [ACL_GROUP_OBJ, 5, U], [ACL_MASK, 7, U], [ACL_OTHER, 0, U]])]], activeNames)).toEqual({
      users: [[1001, 'alice']],
    });
  });

  it('the passive gives each named entry its own id for the name, and drops an unknown name: never the stranger holding the number', () => {
    const sent = aclNamesOf([[ACCESS, activeAcl]], activeNames);
    const { xattrs, dropped } = localizeAcls([[ACCESS, activeAcl], ['user.keep', Buffer.from('v')]], sent, passiveLookup);
    const acl = xattrs[0]![1];
    // alice is 2001 here; 1001 (bob here) gets nothing; carol does not exist here: dropped.
    expect(named(acl, ACL_USER)).toEqual([[2001, 7]]);
    expect(named(acl, ACL_GROUP)).toEqual([[60, 4]]);
    expect(dropped).toEqual(['user "carol" does not exist here']);
    // The other entries, the mask among them, as they were; the other attributes untouched.
    expect(parseAcl(acl)!.filter((e) => e.tag !== ACL_USER && e.tag !== ACL_GROUP)).toEqual([
      { tag: ACL_USER_OBJ, perm: 7, id: U },
      { tag: ACL_GROUP_OBJ, perm: 5, id: U },
      { tag: ACL_MASK, perm: 7, id: U },
      { tag: ACL_OTHER, perm: 0, id: U },
    ]);
    expect(xattrs[1]).toEqual(['user.keep', Buffer.from('v')]);
  });

  it('the passive drops an entry that came without a name (an older or numeric active), keeping the mask', () => {
    const { xattrs, dropped } = localizeAcls([[DEFAULT, activeAcl]], undefined, passiveLookup);
    expect(parseAcl(xattrs[0]![1])!.map((e) => e.tag)).toEqual([ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER]);
    expect(dropped).toEqual(['user:1001 came without a name', 'user:1002 came without a name', 'group:50 came without a name']);
  });

  it('the passive keeps the ACL sorted by its own ids, whatever order the active ids gave', () => {
    // dave (1003 there) is 900 here, alice (1001 there) 2001: the order flips.
    const acl = aclBytes([[ACL_USER_OBJ, 7, U], [ACL_USER, 7, 1001], [ACL_USER, 5, 1003], [ACL_GROUP_OBJ, 5, U], [ACL_MASK, 7, U], [ACL_OTHER, 0, U]]);
    const { xattrs } = localizeAcls([[DEFAULT, acl]], aclNamesOf([[DEFAULT, acl]], activeNames), passiveLookup);
    expect(named(xattrs[0]![1], ACL_USER)).toEqual([
      [900, 5],
      [2001, 7],
    ]);
  });

  it('the passive drops an ACL value that does not parse: its ids cannot be checked', () => {
    const { xattrs, dropped } = localizeAcls([[ACCESS, Buffer.from([2, 0, 0, 0, 1])]], undefined, passiveLookup);
    expect(xattrs).toEqual([]);
    expect(dropped).toEqual([`${ACCESS}: not a POSIX ACL`]);
  });

  it('hashes by name when owners are mapped by name: the mapped ACL equals the original, a wrong mapping does not', () => {
    const all: Xattr[] = [[ACCESS, aclBytes([[ACL_USER_OBJ, 7, U], [ACL_USER, 7, 1001], [ACL_USER, 5, 1003], [ACL_GROUP_OBJ, 5, U], [ACL_GROUP, 4, 50], [ACL_MASK, 7, U], [ACL_OTHER, 0, U]])]];
    useAclNames(activeNames);
    const onActive = xattrsHash(all);
    const sent = aclNamesOf(all);
    const mapped = localizeAcls(all, sent, passiveLookup);
    expect(mapped.dropped).toEqual([]);
    useAclNames(passiveNames);
    expect(xattrsHash(mapped.xattrs)).toEqual(onActive);
    // The same bytes on the passive (ids as numbers) name bob and nobody: a difference.
    expect(xattrsHash(all)).not.toEqual(onActive);
    // Without names the bytes are compared, as before.
    useAclNames(undefined);
    expect(xattrsHash(mapped.xattrs)).not.toEqual(xattrsHash(all));
  });

  it('validates aclNames from the wire: pairs of an id and a name, sorted, bounded', () => {
    expect(aclNamesProblem({ users: [[1, 'a'], [2, 'b']], groups: [[3, 'g']] })).toBeUndefined();
    expect(aclNamesProblem([])).toBe('not a map');
    expect(aclNamesProblem({ users: 'x' })).toBe('users: not a list');
    expect(aclNamesProblem({ users: [[2, 'b'], [1, 'a']] })).toBe('users: ids not sorted or repeated');
    expect(aclNamesProblem({ groups: [[1, 'a:b']] })).toBe('groups: not an [id, name] pair');
    expect(aclNamesProblem({ users: [[-1, 'a']] })).toBe('users: not an [id, name] pair');
    expect(aclNamesProblem({ users: Array.from({ length: MAX_ACL_NAMES + 1 }, (_, i) => [i, `u${i}`]) })).toBe('users: too many');
    expect(metaFieldsProblem({ aclNames: { users: [[1, '']] } })).toBe('aclNames: users: not an [id, name] pair');
    // A record from the wire or a log on disk is refused whole.
    const meta = { op: 'meta', seq: 1, root: 'data', path: 'f', mode: 0o644, mtimeMs: 0 };
    expect(entryProblem({ ...meta, aclNames: { users: [[1001, 'alice']] } })).toBeUndefined();
    expect(entryProblem({ ...meta, aclNames: { users: 'alice' } })).toBe('meta: aclNames: users: not a list');
    expect(entryProblem({ ...meta, op: 'mkdir', aclNames: { groups: [[5, 'a'], [5, 'b']] } })).toBe('mkdir: aclNames: groups: ids not sorted or repeated');
  });
});
