// One error class for the whole project. Every error carries a stable code (listed in
// docs/errors.md), the operation that failed, the cause, and a hint for the operator.
// Never throw a bare Error across a component boundary: wrap it with `TandemError.wrap`.

export const ERROR_CODES = {
  TANDEM_ERR_USAGE: 'A command was called with missing or unknown arguments.',
  TANDEM_ERR_CONFIG_READ: 'The configuration file could not be read or is not valid YAML.',
  TANDEM_ERR_CONFIG_INVALID: 'A configuration key has a wrong type or value.',
  TANDEM_ERR_KEY_INVALID: 'The pair key file is missing, unreadable, too short or too open.',
  TANDEM_ERR_STATE_LOCKED: 'Another agent already runs on this state directory.',
  TANDEM_ERR_STATE_IO: 'The state directory could not be read or written.',
  TANDEM_ERR_AUTH_FAILED: 'The peer does not hold the pair key (wrong key or an impostor).',
  TANDEM_ERR_PEER_UNEXPECTED: 'The peer authenticated but is not the node this pair expects.',
  TANDEM_ERR_FRAME_TOO_LARGE: 'A channel frame exceeded channel.maxFrameBytes.',
  TANDEM_ERR_FRAME_MALFORMED: 'A channel frame could not be decoded or has a wrong shape.',
  TANDEM_ERR_PROTOCOL: 'The peer sent a message that is not valid at this point of the protocol.',
  TANDEM_ERR_CHECKSUM: 'A record failed its checksum.',
  TANDEM_ERR_BLOCK_UNDECODABLE: 'A compressed block does not decompress to the length its record states.',
  TANDEM_ERR_BLOCK_TOO_LARGE: "A write record holds more bytes than the pair's block size.",
  TANDEM_ERR_BATCH_TOO_LARGE: 'The blocks of a batch inflate to more than a batch may hold.',
  TANDEM_ERR_WINDOW_EXCEEDED: 'The active sent more unacknowledged batches than the passive allows.',
  TANDEM_ERR_PATH_OUTSIDE_ROOT: 'A record names a path outside the protected roots.',
  TANDEM_ERR_APPLY_FAILED: 'The passive could not apply a write (disk full, permission…).',
  TANDEM_ERR_JOURNAL_CORRUPT: 'A journal or receive-log segment is damaged before its tail.',
  TANDEM_ERR_JOURNAL_REF_LOST: 'A journaled block referred to bytes of a file that no longer holds them.',
  TANDEM_ERR_CONTROL_UNREACHABLE: 'The agent control API did not answer.',
  TANDEM_ERR_CONTROL_REFUSED: 'The agent control API refused the request.',
  TANDEM_ERR_RESOLVE_REFUSED: 'tandem resolve could not act: no split brain, not the active node, or an unknown node.',
  TANDEM_ERR_SPLIT_BRAIN: 'Both nodes changed data while apart: replication holds until tandem resolve (or a policy) chooses a side.',
  TANDEM_ERR_FAILOVER_REFUSED: 'A node did not take over or hand over its role although asked to: the message says why.',
  TANDEM_ERR_FAILOVER_FAILED: 'A node took the active role but its start script failed: nothing serves.',
  TANDEM_ERR_TWO_ACTIVE: 'Both nodes are active at once.',
  TANDEM_ERR_CHANNEL_SILENT: 'The peer sent nothing on the channel connection for twice the silence that calls the channel down: it was closed and is dialed again.',
  TANDEM_ERR_PEER_STALLED: 'The active peer accepts connections but its agent does not answer; no takeover.',
  TANDEM_ERR_SWITCHOVER_FAILED: 'A switchover failed and was rolled back to the original active.',
  TANDEM_ERR_SWITCHOVER_REFUSED: 'A switchover was refused before anything changed (peer not connected, not in sync…).',
  TANDEM_ERR_SCRIPT_FAILED: 'The stop script failed while the node stepped down or released its identity.',
  TANDEM_ERR_VERIFY_BUSY: 'A verification is already running with another --repair choice.',
  TANDEM_ERR_VERIFY_FAILED: 'A verification could not complete (the message says why).',
  TANDEM_ERR_VERIFY_REFUSED: 'A verification was refused: the node asked is not active, or no passive is connected.',
  TANDEM_ERR_INTERNAL: 'A bug: an invariant of Tandem itself did not hold.',
  TANDEM_ERR_ACTION_REFUSED: 'An operator action (pause, resume, maintenance…) was refused by the node asked; nothing changed.',
  TANDEM_ERR_PACK_INVALID: 'A clone pack cannot be read or opened: damaged, of another pair, or a wrong pack code.',
  TANDEM_ERR_PREFLIGHT_FAILED: 'A check of tandem check (or of an install) failed: the output names it and its fix.',
  TANDEM_ERR_INSTALL_FAILED: 'tandem install or uninstall could not complete (a file exists, cannot be written, or the agent did not start).',
  TANDEM_ERR_FENCE_FAILED: 'The fence script failed: this node does not take over until a fence succeeds.',
  TANDEM_ERR_PASSIVE_MODIFIED: "Someone other than Tandem changed the passive's copy: it is not the active's state until repaired.",
  TANDEM_ERR_PROTECT_FAILED: 'replication.protectPassive could not make (or undo) the read-only protection of the protected roots.',
  TANDEM_ERR_PATH_SWAPPED: 'A directory inside a protected root was found replaced by a symbolic link (or kept changing) while a path below it was resolved: nothing was read or written through it.',
  TANDEM_ERR_SPECIAL_BITS_CLEARED: 'A setuid or setgid bit or a file capability was not applied on the passive, because the owner it belongs to was not: the bit was cleared, never granted.',
  TANDEM_ERR_OWNER_UNAPPLIED: "The passive could not give a path the owner the active's has (not root, or a user or group name it does not know).",
  TANDEM_ERR_XATTR_UNAPPLIED: 'Extended attributes or ACLs could not be read on the active or written on the passive (no module, no support in the file system, refused).',
  TANDEM_ERR_POINT_FAILED: 'A consistency point could not be taken or its changes listed (a btrfs snapshot or send failed): that root is captured file by file until one succeeds.',
  TANDEM_ERR_POINTS_UNSUPPORTED: 'A protected root set to consistency: snapshot cannot give consistency points (not a btrfs subvolume root, no btrfs-progs, not root…).',
  TANDEM_ERR_MESSAGE_UNEXPECTED: 'The peer sent a valid message that no part of this node takes on that connection (before the hello, a second hello, or a kind its role does not handle).',
  TANDEM_ERR_ACL_ENTRY_DROPPED: 'With replication.owners: names, a named ACL entry (user:NAME or group:NAME) whose name the passive does not know, or that came without a name, was left out: access denied, never granted to whoever has that id here.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface TandemErrorInit {
  code: ErrorCode;
  /** What was being done, e.g. "apply write data/a.txt". */
  op: string;
  /** Why it failed, in words; the message is "op: reason". */
  reason: string;
  /** What the operator can do about it. */
  hint?: string;
  cause?: unknown;
  /** Extra structured facts for logs and status (path, seq, key…). */
  details?: Record<string, unknown>;
}

export class TandemError extends Error {
  readonly code: ErrorCode;
  readonly op: string;
  readonly reason: string;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(init: TandemErrorInit) {
    super(`${init.op}: ${init.reason}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'TandemError';
    this.code = init.code;
    this.op = init.op;
    this.reason = init.reason;
    this.hint = init.hint;
    this.details = init.details ?? {};
  }

  /** Wraps any thrown value, keeping a TandemError as it is. */
  static wrap(err: unknown, init: Omit<TandemErrorInit, 'reason' | 'cause'> & { reason?: string }): TandemError {
    if (err instanceof TandemError) return err;
    const reason = init.reason ?? describeCause(err);
    return new TandemError({ ...init, reason, cause: err });
  }

  /** The plain form used in status JSON, control API answers and the CLI. */
  toJSON(): { code: ErrorCode; op: string; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      op: this.op,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(Object.keys(this.details).length === 0 ? {} : { details: this.details }),
    };
  }
}

/** "ENOSPC: no space left on device" from any thrown value. */
export function describeCause(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** The errno code of a Node system error, if any. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
