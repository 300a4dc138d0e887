import { describe, expect, it } from 'vitest';
import { isProtectionMount, mountsAt, parseMountInfo } from '../../../agent/standby/mount-info.ts';

// A root on the root file system, one root that is itself a separate file system, and a path
// with a space (escaped as \040 by the kernel).
const TEXT = [
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
  '40 27 8:17 / /srv/db rw,relatime shared:5 - xfs /dev/sdb1 rw',
  '41 27 254:0 /srv/data /var/lib/tandem/standby/rw/data rw,relatime - ext4 /dev/vda rw',
  '42 27 254:0 /srv/data /srv/data ro,relatime - ext4 /dev/vda rw',
  '43 40 8:17 / /srv/db ro,relatime shared:5 - xfs /dev/sdb1 rw',
  '44 27 254:0 /srv/my\\040files /srv/my\\040files ro,relatime - ext4 /dev/vda rw',
  '45 27 0:50 / /srv/other ro,relatime - tmpfs tmpfs ro',
  'not a mountinfo line',
].join('\n');

describe('mountinfo', () => {
  const m = parseMountInfo(TEXT);

  it('parses every well-formed line, unescaping paths', () => {
    expect(m).toHaveLength(7);
    expect(m[1]).toMatchObject({ id: 40, parent: 27, dev: '8:17', root: '/', mountPoint: '/srv/db', options: ['rw', 'relatime'], fsType: 'xfs' });
    expect(m[5]!.mountPoint).toBe('/srv/my files');
  });

  it('stacks the mounts at one path bottom first', () => {
    expect(mountsAt(m, '/srv/db').map((e) => e.id)).toEqual([40, 43]);
    expect(mountsAt(m, '/srv/data').map((e) => e.id)).toEqual([42]);
    expect(mountsAt(m, '/nowhere')).toEqual([]);
  });

  it("recognises the read-only bind of a root over itself, and never an operator's own mount", () => {
    expect(isProtectionMount(m, mountsAt(m, '/srv/data').at(-1)!)).toBe(true);
    // On a root that is a file system of its own: the bind of it over itself.
    expect(isProtectionMount(m, mountsAt(m, '/srv/db').at(-1)!)).toBe(true);
    expect(isProtectionMount(m, mountsAt(m, '/srv/db')[0]!)).toBe(false);
    // Read-only, but another file system than the one it sits on.
    expect(isProtectionMount(m, mountsAt(m, '/srv/other')[0]!)).toBe(false);
    // Read-write.
    expect(isProtectionMount(m, mountsAt(m, '/var/lib/tandem/standby/rw/data')[0]!)).toBe(false);
  });
});
