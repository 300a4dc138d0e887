// The POSIX ACL attribute format: parsed as the kernel writes it (taken from a real file), and
// encoded back sorted as the kernel requires.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_UNDEFINED_ID, ACL_USER, ACL_USER_OBJ, encodeAcl, parseAcl } from '../../../agent/tree/posix-acl.ts';
import { aclBytes } from './acl-bytes.ts';

const U = ACL_UNDEFINED_ID;

function hasTools(): boolean {
  try {
    execFileSync('setfacl', ['--version'], { stdio: 'ignore' });
    execFileSync('getfattr', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('posix acl', () => {
  it('parses an ACL as the kernel stores it: owner, named users and groups, mask, other', () => {
    expect(parseAcl(aclBytes([[ACL_USER_OBJ, 7, U], [ACL_USER, 6, 1001], [ACL_GROUP_OBJ, 5, U], [ACL_GROUP, 4, 50], [ACL_MASK, 7, U], [ACL_OTHER, 0, U]]))).toEqual([
      { tag: ACL_USER_OBJ, perm: 7, id: U },
      { tag: ACL_USER, perm: 6, id: 1001 },
      { tag: ACL_GROUP_OBJ, perm: 5, id: U },
      { tag: ACL_GROUP, perm: 4, id: 50 },
      { tag: ACL_MASK, perm: 7, id: U },
      { tag: ACL_OTHER, perm: 0, id: U },
    ]);
  });

  it('refuses what is not an ACL: another version, a torn entry, an unknown tag, too short', () => {
    const bad = aclBytes([[ACL_USER_OBJ, 7, U]]);
    bad.writeUInt32LE(1, 0);
    expect(parseAcl(bad)).toBeUndefined();
    expect(parseAcl(aclBytes([[ACL_USER_OBJ, 7, U]]).subarray(0, 10))).toBeUndefined();
    expect(parseAcl(aclBytes([[0x40, 7, U]]))).toBeUndefined();
    expect(parseAcl(Buffer.from([2, 0]))).toBeUndefined();
    expect(parseAcl(aclBytes([]))).toEqual([]);
  });

  it('encodes sorted by tag then id, whatever the order given, and round-trips', () => {
    const entries = [
      { tag: ACL_OTHER, perm: 0, id: U },
      { tag: ACL_USER, perm: 6, id: 2000 },
      { tag: ACL_MASK, perm: 7, id: U },
      { tag: ACL_USER, perm: 4, id: 5 },
      { tag: ACL_GROUP_OBJ, perm: 5, id: U },
      { tag: ACL_USER_OBJ, perm: 7, id: U },
    ];
    const enc = encodeAcl(entries);
    expect(enc).toEqual(aclBytes([[ACL_USER_OBJ, 7, U], [ACL_USER, 4, 5], [ACL_USER, 6, 2000], [ACL_GROUP_OBJ, 5, U], [ACL_MASK, 7, U], [ACL_OTHER, 0, U]]));
    expect(encodeAcl(parseAcl(enc)!)).toEqual(enc);
  });

  it('merges two entries that came to share an id into one with only the permissions both had', () => {
    const enc = encodeAcl([
      { tag: ACL_USER_OBJ, perm: 7, id: U },
      { tag: ACL_USER, perm: 6, id: 7 },
      { tag: ACL_USER, perm: 5, id: 7 },
      { tag: ACL_GROUP_OBJ, perm: 5, id: U },
      { tag: ACL_MASK, perm: 7, id: U },
      { tag: ACL_OTHER, perm: 0, id: U },
    ]);
    expect(parseAcl(enc)!.filter((e) => e.tag === ACL_USER)).toEqual([{ tag: ACL_USER, perm: 4, id: 7 }]);
  });

  it.skipIf(!hasTools())('reads what setfacl writes, and what it encodes the kernel takes back unchanged', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-acl-'));
    try {
      const f = path.join(dir, 'f');
      fs.writeFileSync(f, '');
      execFileSync('setfacl', ['-m', 'u:65534:rw,u:1:r,g:65534:r', f]);
      const value = execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'system.posix_acl_access', f]);
      const entries = parseAcl(value)!;
      expect(entries.filter((e) => e.tag === ACL_USER).map((e) => [e.id, e.perm])).toEqual([
        [1, 4],
        [65534, 6],
      ]);
      expect(entries.filter((e) => e.tag === ACL_GROUP).map((e) => [e.id, e.perm])).toEqual([[65534, 4]]);
      expect(encodeAcl([...entries].reverse())).toEqual(value);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
