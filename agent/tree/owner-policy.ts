// Which owner the passive gives a path, and whether the privileges tied to an owner may come
// with it: a pure decision over `replication.owners` and what the record carries. A setuid or
// setgid bit or a file capability is granted only together with the very owner it had on the
// active; whenever that owner is not applied as such (owners off, a name this node does not
// know, a record from a version that sent no owner), the privilege is cleared, never granted
// to whoever the file belongs to here.
import type { OwnerFields } from '../../shared/protocol/index.ts';

export type OwnersMode = 'numeric' | 'names' | 'off';

/** setuid and setgid: the bits that hand the owner's (or group's) identity to whoever runs the file. */
export const PRIVILEGE_BITS = 0o6000;

export interface OwnerLookup {
  uidOf(name: string): number | undefined;
  gidOf(name: string): number | undefined;
}

export interface OwnerDecision {
  /** The ids to chown to; undefined: leave the owner as it is (off, or nothing sent). */
  uid?: number;
  gid?: number;
  /** Setuid/setgid and security.capability may be applied (once the chown succeeded). */
  privileged: boolean;
  /** Why the owner is not the active's exactly (for TANDEM_ERR_OWNER_UNAPPLIED), when that is not by configuration. */
  problem?: string;
  /** Why privileges are withheld, in words (for TANDEM_ERR_SPECIAL_BITS_CLEARED). */
  withheld?: string;
}

export function decideOwner(mode: OwnersMode, r: OwnerFields, lookup: OwnerLookup): OwnerDecision {
  if (mode === 'off') return { privileged: false, withheld: 'replication.owners is off' };
  if (r.uid === undefined || r.gid === undefined) return { privileged: false, withheld: 'the record carries no owner (journaled by an older version)' };
  if (mode === 'numeric') return { uid: r.uid, gid: r.gid, privileged: true };
  // names: each of user and group by its name on this node; a name unknown here (or an id the
  // active had no name for) keeps its number, as rsync does, but then it may be someone else.
  const problems: string[] = [];
  let uid = r.user === undefined ? undefined : lookup.uidOf(r.user);
  if (uid === undefined) {
    problems.push(r.user === undefined ? `uid ${r.uid} has no name on the active` : `user "${r.user}" does not exist here`);
    uid = r.uid;
  }
  let gid = r.group === undefined ? undefined : lookup.gidOf(r.group);
  if (gid === undefined) {
    problems.push(r.group === undefined ? `gid ${r.gid} has no name on the active` : `group "${r.group}" does not exist here`);
    gid = r.gid;
  }
  if (problems.length === 0) return { uid, gid, privileged: true };
  const problem = `${problems.join(', ')}: kept as ${uid}:${gid}`;
  return { uid, gid, privileged: false, problem, withheld: problem };
}
