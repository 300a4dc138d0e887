// The protected trees as Tandem touches them on either node: paths resolved below a root one
// component at a time (never through a symbolic link, nothing kept across records unchecked), owners
// and their names, extended attributes and ACLs. It must never follow a link below a root nor
// let a privilege (setuid, setgid, file capabilities) arrive without the owner it belongs to,
// nor an ACL entry grant a user or group other than the one it names.
export * from './beneath.ts';
export { fileStatOf, type FileStat } from './file-stat.ts';
export { UserDb, parseIdFile } from './user-db.ts';
export type { UserDbFiles } from './user-db.ts';
export { readXattrs, writeXattrs, hasDefaultAcl, xattrsHash, xattrProblem, xattrErrno, disableXattrsForTests, CAPABILITY_XATTR } from './xattrs.ts';
export type { Xattr, XattrRead, XattrWrite } from './xattrs.ts';
export { decideOwner, PRIVILEGE_BITS } from './owner-policy.ts';
export type { OwnersMode, OwnerDecision, OwnerLookup } from './owner-policy.ts';
export { ownerFieldsOf, readEntryMeta, sameXattrHash, aclNamesField } from './entry-meta.ts';
export { useAclNames, aclNaming, aclNamesOf, localizeAcls, aclHashForm } from './acl-names.ts';
export type { IdNames, LocalizedAcls } from './acl-names.ts';
export { parseAcl, encodeAcl, isAclXattr } from './posix-acl.ts';
export type { AclEntry } from './posix-acl.ts';
export type { DiskMeta, UserNames } from './entry-meta.ts';
