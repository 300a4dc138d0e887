// A parser of the stream `btrfs send` writes (the kernel's format, versions 1 and 2): a header,
// then commands, each `u32 length, u16 command, u32 crc32c` and its attributes as `u16 type, u16
// length, value`. Pure and incremental: bytes go in as they arrive, commands come out, and
// nothing is kept but the unfinished tail. Capture asks for `--no-data` streams, which name what
// changed between two snapshots without carrying file contents.
//
// The stream comes from the kernel through a child process, yet it is parsed as input that may
// be wrong: every length is checked against what is left, every command against its checksum,
// a command may not exceed MAX_COMMAND_BYTES, and numbers beyond 2^53 are refused.
import { crc32cRaw } from './crc32c.ts';

export const SEND_STREAM_MAGIC = 'btrfs-stream\0';
const HEADER_BYTES = SEND_STREAM_MAGIC.length + 4;
const COMMAND_HEADER_BYTES = 10;
/**
 * Version 1 commands hold at most 64 KiB; version 2 lifts the bound only for file data, which a
 * `--no-data` stream does not carry. A longer command is refused rather than buffered.
 */
export const MAX_COMMAND_BYTES = 1024 * 1024;

/** Command numbers (the kernel's enum btrfs_send_cmd). */
const COMMANDS: Record<number, string> = {
  1: 'subvol',
  2: 'snapshot',
  3: 'mkfile',
  4: 'mkdir',
  5: 'mknod',
  6: 'mkfifo',
  7: 'mksock',
  8: 'symlink',
  9: 'rename',
  10: 'link',
  11: 'unlink',
  12: 'rmdir',
  13: 'set_xattr',
  14: 'remove_xattr',
  15: 'write',
  16: 'clone',
  17: 'truncate',
  18: 'chmod',
  19: 'chown',
  20: 'utimes',
  21: 'end',
  22: 'update_extent',
  23: 'fallocate',
  24: 'fileattr',
  25: 'encoded_write',
  26: 'enable_verity',
};

/** Attribute numbers (the kernel's BTRFS_SEND_A_*) that the change list reads. */
const A_SIZE = 4;
const A_PATH = 15;
const A_PATH_TO = 16;
const A_PATH_LINK = 17;
const A_FILE_OFFSET = 18;
const A_DATA = 19;
const A_CLONE_LEN = 24;
const A_UNENCODED_FILE_LEN = 27;

export interface SendCommand {
  /** The command's name as `btrfs receive --dump` prints it (`update_extent`, `rename`…). */
  op: string;
  /** The path the command acts on, relative to the subvolume ('' for its root). */
  path?: string;
  /** rename: the new name. */
  to?: string;
  /** link: the existing name the new one links to; symlink: the link's target. */
  link?: string;
  /** update_extent, write, clone, fallocate, encoded_write: where in the file. */
  offset?: number;
  /** update_extent, clone, fallocate, encoded_write: how many bytes; write: its data's length. */
  length?: number;
  /** truncate: the new size. */
  size?: number;
}

export class SendStreamError extends Error {}

export class SendStreamParser {
  private buf: Buffer = Buffer.alloc(0);
  private version = 0;
  private ended = false;
  /** Bytes taken so far (for messages). */
  private offset = 0;

  /** Stream version from the header (0 until the header was read). */
  get streamVersion(): number {
    return this.version;
  }

  /** True once the `end` command was read. */
  get complete(): boolean {
    return this.ended;
  }

  /** Takes the next bytes of the stream; returns the commands they complete, in order. */
  push(chunk: Uint8Array): SendCommand[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const out: SendCommand[] = [];
    if (this.version === 0) {
      if (this.buf.length < HEADER_BYTES) return out;
      if (this.buf.toString('latin1', 0, SEND_STREAM_MAGIC.length) !== SEND_STREAM_MAGIC) this.fail('not a btrfs send stream (bad magic)');
      this.version = this.buf.readUInt32LE(SEND_STREAM_MAGIC.length);
      if (this.version < 1 || this.version > 3) this.fail(`send stream version ${this.version} is not supported`);
      this.take(HEADER_BYTES);
    }
    while (this.buf.length >= COMMAND_HEADER_BYTES) {
      if (this.ended) this.fail('bytes after the end command');
      const len = this.buf.readUInt32LE(0);
      if (len > MAX_COMMAND_BYTES) this.fail(`a command of ${len} bytes is longer than ${MAX_COMMAND_BYTES}`);
      if (this.buf.length < COMMAND_HEADER_BYTES + len) break;
      const cmd = this.buf.readUInt16LE(4);
      const crc = this.buf.readUInt32LE(6);
      const whole = this.buf.subarray(0, COMMAND_HEADER_BYTES + len);
      // The checksum covers the header with its crc field zeroed, and the attributes.
      const zeroed = Buffer.from(whole);
      zeroed.writeUInt32LE(0, 6);
      if (crc32cRaw(zeroed) !== crc) this.fail(`command ${cmd} fails its checksum`);
      out.push(this.decode(cmd, whole.subarray(COMMAND_HEADER_BYTES)));
      this.take(COMMAND_HEADER_BYTES + len);
    }
    return out;
  }

  /** The stream ended: throws when it stopped inside a command or before its end command. */
  finish(): void {
    if (this.version === 0) this.fail('the stream ended before its header');
    if (this.buf.length > 0) this.fail(`the stream ended inside a command (${this.buf.length} bytes left)`);
    if (!this.ended) this.fail('the stream ended without its end command');
  }

  private take(n: number): void {
    this.buf = this.buf.subarray(n);
    this.offset += n;
  }

  private fail(reason: string): never {
    throw new SendStreamError(`btrfs send stream at byte ${this.offset}: ${reason}`);
  }

  private decode(cmd: number, attrs: Buffer): SendCommand {
    const op = COMMANDS[cmd];
    if (op === undefined) this.fail(`unknown command ${cmd}`);
    if (op === 'end') this.ended = true;
    const c: SendCommand = { op };
    let p = 0;
    while (p < attrs.length) {
      if (attrs.length - p < 2) this.fail(`${op}: a truncated attribute`);
      const type = attrs.readUInt16LE(p);
      // Version 2's data attribute has no length: it runs to the end of the command.
      if (this.version >= 2 && type === A_DATA) {
        c.length = attrs.length - p - 2;
        break;
      }
      if (attrs.length - p < 4) this.fail(`${op}: a truncated attribute`);
      const len = attrs.readUInt16LE(p + 2);
      if (p + 4 + len > attrs.length) this.fail(`${op}: attribute ${type} runs past its command`);
      const v = attrs.subarray(p + 4, p + 4 + len);
      switch (type) {
        case A_PATH:
          c.path = this.str(v, op);
          break;
        case A_PATH_TO:
          c.to = this.str(v, op);
          break;
        case A_PATH_LINK:
          c.link = this.str(v, op);
          break;
        case A_FILE_OFFSET:
          c.offset = this.u64(v, op);
          break;
        case A_SIZE:
          if (op === 'truncate') c.size = this.u64(v, op);
          else c.length = this.u64(v, op);
          break;
        case A_CLONE_LEN:
        case A_UNENCODED_FILE_LEN:
          c.length = this.u64(v, op);
          break;
        case A_DATA:
          c.length = len;
          break;
        default:
          break; // uuids, times, modes, owners, xattrs: the path says enough
      }
      p += 4 + len;
    }
    return c;
  }

  private str(v: Buffer, op: string): string {
    if (v.includes(0)) this.fail(`${op}: a path holds a NUL byte`);
    return v.toString('utf8');
  }

  private u64(v: Buffer, op: string): number {
    if (v.length !== 8) this.fail(`${op}: a number of ${v.length} bytes`);
    const n = v.readBigUInt64LE(0);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${op}: number ${n} is too large`);
    return Number(n);
  }
}

/** Parses a whole stream held in memory (tests, small diffs). */
export function parseSendStream(bytes: Uint8Array): SendCommand[] {
  const p = new SendStreamParser();
  const out = p.push(bytes);
  p.finish();
  return out;
}
