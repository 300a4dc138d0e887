import { describe, expect, it } from 'vitest';
import { SendStreamParser, crc32cRaw, parseSendStream } from '../../../agent/points/index.ts';
import { A, C, str, stream, u64 } from '../../helpers/send-stream-fixture.ts';


describe('btrfs send stream parser', () => {
  it('computes CRC-32C the way btrfs does (no inversion): the check value of "123456789" without the final xor', () => {
    // The standard CRC-32C check value 0xE3069283 is for seed ~0 and a final inversion.
    expect((crc32cRaw(Buffer.from('123456789'), 0xffffffff) ^ 0xffffffff) >>> 0).toBe(0xe3069283);
  });

  it('decodes the commands capture reads, with their paths, offsets, lengths and sizes', () => {
    const bytes = stream([
      [C.SNAPSHOT, [[A.PATH, str('2')]]],
      [C.RENAME, [[A.PATH, str('a/b')], [A.PATH_TO, str('a/c')]]],
      [C.LINK, [[A.PATH, str('hard')], [A.PATH_LINK, str('a/c/f1')]]],
      [C.UPDATE_EXTENT, [[A.PATH, str('big')], [A.OFFSET, u64(409600)], [A.SIZE, u64(8192)]]],
      [C.TRUNCATE, [[A.PATH, str('big2')], [A.SIZE, u64(1 << 20)]]],
      [C.WRITE, [[A.PATH, str('w')], [A.OFFSET, u64(10)], [A.DATA, Buffer.alloc(5)]]],
      [C.CLONE, [[A.PATH, str('c')], [A.OFFSET, u64(0)], [A.CLONE_LEN, u64(4096)]]],
      [C.END, []],
    ]);
    expect(parseSendStream(bytes)).toEqual([
      { op: 'snapshot', path: '2' },
      { op: 'rename', path: 'a/b', to: 'a/c' },
      { op: 'link', path: 'hard', link: 'a/c/f1' },
      { op: 'update_extent', path: 'big', offset: 409600, length: 8192 },
      { op: 'truncate', path: 'big2', size: 1 << 20 },
      { op: 'write', path: 'w', offset: 10, length: 5 },
      { op: 'clone', path: 'c', offset: 0, length: 4096 },
      { op: 'end' },
    ]);
  });

  it('gives the same commands whatever the chunks the stream arrives in', () => {
    const bytes = stream([
      [C.MKFILE, [[A.PATH, str('o257-7-0')]]],
      [C.RENAME, [[A.PATH, str('o257-7-0')], [A.PATH_TO, str('dir/new')]]],
      [C.UPDATE_EXTENT, [[A.PATH, str('dir/new')], [A.OFFSET, u64(0)], [A.SIZE, u64(3)]]],
      [C.END, []],
    ]);
    const whole = parseSendStream(bytes);
    const p = new SendStreamParser();
    const got = [];
    for (let i = 0; i < bytes.length; i += 3) got.push(...p.push(bytes.subarray(i, i + 3)));
    p.finish();
    expect(got).toEqual(whole);
  });

  it('refuses a stream that is not one, is damaged, cut short, or holds what it must not', () => {
    const good = stream([[C.UTIMES, [[A.PATH, str('x')]]], [C.END, []]]);
    expect(() => parseSendStream(Buffer.concat([Buffer.from('not-a-stream!'), good.subarray(13)]))).toThrow(/bad magic/);
    const flipped = Buffer.from(good);
    flipped[good.length - 12] = flipped[good.length - 12]! ^ 1;
    expect(() => parseSendStream(flipped)).toThrow(/checksum/);
    expect(() => parseSendStream(good.subarray(0, good.length - 5))).toThrow(/inside a command/);
    expect(() => parseSendStream(stream([[C.UTIMES, [[A.PATH, str('x')]]]]))).toThrow(/without its end/);
    expect(() => parseSendStream(stream([[99, []], [C.END, []]]))).toThrow(/unknown command 99/);
    expect(() => parseSendStream(stream([[C.UTIMES, [[A.PATH, Buffer.from('a\0b')]]], [C.END, []]]))).toThrow(/NUL/);
    expect(() => parseSendStream(stream([[C.UPDATE_EXTENT, [[A.PATH, str('x')], [A.OFFSET, Buffer.alloc(8, 0xff)]]], [C.END, []]]))).toThrow(/too large/);
    // An attribute that claims more bytes than its command holds.
    const lying = stream([[C.UTIMES, [[A.PATH, str('x')]]], [C.END, []]]);
    lying.writeUInt16LE(200, 17 + 10 + 2);
    lying.writeUInt32LE(0, 17 + 6);
    lying.writeUInt32LE(crc32cRaw(lying.subarray(17, 17 + 10 + 5)), 17 + 6);
    expect(() => parseSendStream(lying)).toThrow(/runs past its command/);
    // A command longer than any a --no-data stream holds is refused before it is buffered.
    const huge = Buffer.concat([good.subarray(0, 17), Buffer.from([0, 0, 0x20, 0, 20, 0, 0, 0, 0, 0])]);
    expect(() => new SendStreamParser().push(huge)).toThrow(/longer than/);
  });

  it('reads a version 2 data attribute as running to the end of its command', () => {
    const bytes = stream([[C.WRITE, [[A.PATH, str('w')], [A.OFFSET, u64(4096)]]], [C.END, []]], 2);
    // Append a v2 data attribute (type only, no length) to the write command.
    const cmdStart = 17;
    const len = bytes.readUInt32LE(cmdStart);
    const extra = Buffer.concat([Buffer.from([A.DATA, 0]), Buffer.alloc(100)]);
    const cmd = Buffer.concat([bytes.subarray(cmdStart, cmdStart + 10 + len), extra]);
    cmd.writeUInt32LE(len + extra.length, 0);
    cmd.writeUInt32LE(0, 6);
    cmd.writeUInt32LE(crc32cRaw(cmd), 6);
    const v2 = Buffer.concat([bytes.subarray(0, cmdStart), cmd, bytes.subarray(cmdStart + 10 + len)]);
    expect(parseSendStream(v2)[0]).toEqual({ op: 'write', path: 'w', offset: 4096, length: 100 });
  });
});
