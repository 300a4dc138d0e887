// ACL attribute values for the tests, built entry by entry in the order given (unsorted on purpose).

/** Version 2, then each [tag, perm, id] as the kernel lays it out (little-endian). */
export function aclBytes(entries: [tag: number, perm: number, id: number][]): Buffer {
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id, 8 + i * 8);
  });
  return b;
}
