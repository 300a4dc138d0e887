// The few facts a node must remember across restarts besides its logs: its role, the
// generation of the data it holds, and (passive) the synchronisation it has begun but not
// finished. Written atomically (temp file, fsync, rename, fsync of the folder).
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_FILE_MODE } from '../../shared/constants.ts';
import { TandemError } from '../../shared/errors.ts';
import type { Role } from '../../shared/protocol/index.ts';

export interface NodeState {
  role: Role;
  /** Id of the lineage of data this node holds ('' until a passive received its first sync). */
  generation: string;
  /** Counts role changes: each promotion starts epoch + 1. Of two active nodes, the higher epoch is the real one. */
  epoch: number;
  /**
   * The last epoch in which this node was active (0: never). Of two passive nodes, the one with
   * the higher value holds the newest data (agent/failover: both passive after an outage).
   */
  activeEpoch: number;
  /**
   * The generations this one continues, newest first: history[0] is the generation it forked
   * from and the last sequence of it this node held then (agent/replication/lineage.ts). Two
   * nodes compare histories on every connection: resume, catch up from where they last agreed,
   * or stop at a split brain.
   */
  history: { generation: string; forkSeq: number }[];
  /**
   * Passive: its changes since it split from the active are to be discarded (tandem resolve
   * chose the peer, or a policy did); told to the active in the hello, cleared once a
   * synchronisation over them begins.
   */
  discard: boolean;
  /** Passive: a synchronisation begun and not finished; its tree is not a real state until it ends. */
  syncId: string;
  /** Passive: bytes of block data that synchronisation sends (its progress survives a restart). */
  syncBytesTotal: number;
}

/** The history as stored; a state written before histories had at most its `parent`. */
function historyOf(parsed: Partial<NodeState> & { parent?: unknown }): NodeState['history'] {
  const valid = (h: unknown): h is { generation: string; forkSeq: number } =>
    typeof h === 'object' && h !== null && typeof (h as Record<string, unknown>).generation === 'string' && Number.isInteger((h as Record<string, unknown>).forkSeq);
  if (Array.isArray(parsed.history)) return parsed.history.filter(valid);
  return valid(parsed.parent) ? [{ generation: parsed.parent.generation, forkSeq: parsed.parent.forkSeq }] : [];
}

export function newGeneration(): string {
  return crypto.randomBytes(8).toString('hex');
}

export class NodeStateStore {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private state: NodeState,
  ) {}

  /** Loads the state, or creates it from the configured initial role on the first start. */
  static async open(stateDir: string, initialRole: Role): Promise<{ store: NodeStateStore; created: boolean }> {
    const file = path.join(stateDir, 'node.json');
    let text: string | undefined;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw TandemError.wrap(err, { code: 'TANDEM_ERR_STATE_IO', op: `read ${file}` });
    }
    if (text === undefined) {
      const state: NodeState = { role: initialRole, generation: initialRole === 'active' ? newGeneration() : '', epoch: initialRole === 'active' ? 1 : 0, activeEpoch: initialRole === 'active' ? 1 : 0, history: [], discard: false, syncId: '', syncBytesTotal: 0 };
      const store = new NodeStateStore(file, state);
      await store.write();
      return { store, created: true };
    }
    let parsed: Partial<NodeState>;
    try {
      parsed = JSON.parse(text) as Partial<NodeState>;
    } catch (err) {
      throw TandemError.wrap(err, {
        code: 'TANDEM_ERR_STATE_IO',
        op: `read ${file}`,
        reason: 'not valid JSON',
        hint: 'the file is written atomically, so this is outside damage: restore it or remove the state directory to start over',
      });
    }
    if ((parsed.role !== 'active' && parsed.role !== 'passive') || typeof parsed.generation !== 'string') {
      throw new TandemError({ code: 'TANDEM_ERR_STATE_IO', op: `read ${file}`, reason: 'missing role or generation', hint: 'restore the file or remove the state directory' });
    }
    const state: NodeState = {
      role: parsed.role,
      generation: parsed.generation,
      epoch: parsed.epoch ?? (parsed.role === 'active' ? 1 : 0),
      activeEpoch: parsed.activeEpoch ?? (parsed.role === 'active' ? (parsed.epoch ?? 1) : 0),
      history: historyOf(parsed),
      discard: parsed.discard === true,
      syncId: parsed.syncId ?? '',
      syncBytesTotal: parsed.syncBytesTotal ?? 0,
    };
    return { store: new NodeStateStore(file, state), created: false };
  }

  get(): Readonly<NodeState> {
    return this.state;
  }

  /**
   * Changes the state at once and persists it. Writes run one after another (they share one
   * temp file); each writes the state as it is then, so the last one holds every change.
   */
  async update(patch: Partial<NodeState>): Promise<void> {
    this.state = { ...this.state, ...patch };
    const written = this.writing.then(() => this.write());
    this.writing = written.catch(() => undefined);
    await written;
  }

  private async write(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const fh = await fsp.open(tmp, 'w', PRIVATE_FILE_MODE);
    try {
      await fh.writeFile(`${JSON.stringify(this.state, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, this.file);
    const dir = await fsp.open(path.dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** Makes sure only one agent uses a state directory: a lock file holding the owner's pid. */
export function acquireStateLock(stateDir: string): () => void {
  const file = path.join(stateDir, 'agent.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: PRIVATE_FILE_MODE });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw TandemError.wrap(err, { code: 'TANDEM_ERR_STATE_IO', op: `lock ${file}` });
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new TandemError({
          code: 'TANDEM_ERR_STATE_LOCKED',
          op: `lock ${file}`,
          reason: `agent pid ${pid} already runs on this state directory`,
          hint: 'stop that agent first, or point stateDir elsewhere',
          details: { pid },
        });
      }
      // The owner died without cleaning up (SIGKILL, power loss): the lock is stale.
      fs.unlinkSync(file);
    }
  }
  throw new TandemError({ code: 'TANDEM_ERR_STATE_LOCKED', op: `lock ${file}`, reason: 'could not take the lock', hint: 'retry' });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
