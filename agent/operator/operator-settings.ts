// What an operator set on this node and must still hold after a restart: a maintenance hold, a
// replication pause, and the salt of the control token. A restarted agent that forgot a
// maintenance hold would fail over in the middle of the very work the hold protects.
// Written like node.json: temp file, fsync, rename, directory sync; 0600.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-file.ts';
import { TandemError, errnoOf } from '../../shared/errors.ts';

export const OPERATOR_FILE = 'operator.json';

export interface Hold {
  on: boolean;
  /** When it was last set or lifted (ms since the epoch). */
  since: number;
  /** Why, as the operator said (tandem maintenance on --reason TEXT). */
  reason: string;
}

export interface OperatorSettings {
  maintenance: Hold;
  paused: Hold;
  /** Salt of the control token ('' for the token derived from the pair key alone). */
  tokenSalt: string;
  tokenRotatedAt: number;
}

const OFF: Hold = { on: false, since: 0, reason: '' };
/** Lengths the operator's text is cut to. */
export const MAX_REASON_CHARS = 200;

function holdOf(v: unknown): Hold {
  if (typeof v !== 'object' || v === null) return OFF;
  const h = v as Record<string, unknown>;
  return { on: h.on === true, since: typeof h.since === 'number' ? h.since : 0, reason: typeof h.reason === 'string' ? h.reason.slice(0, MAX_REASON_CHARS) : '' };
}

export class OperatorSettingsStore {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private state: OperatorSettings,
  ) {}

  static async open(stateDir: string): Promise<OperatorSettingsStore> {
    const file = path.join(stateDir, OPERATOR_FILE);
    let text: string | undefined;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw TandemError.wrap(err, { code: 'TANDEM_ERR_STATE_IO', op: `read ${file}` });
    }
    if (text === undefined) return new OperatorSettingsStore(file, { maintenance: OFF, paused: OFF, tokenSalt: '', tokenRotatedAt: 0 });
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
      if (typeof raw !== 'object' || raw === null) throw new Error('not an object');
    } catch (err) {
      // Refused rather than guessed: a lost maintenance hold would let the node fail over.
      throw TandemError.wrap(err, {
        code: 'TANDEM_ERR_STATE_IO',
        op: `read ${file}`,
        reason: 'not valid JSON',
        hint: 'the file is written atomically, so this is outside damage: fix it, or remove it (maintenance and pause are then off, and the control token is derived from the pair key again)',
      });
    }
    const salt = typeof raw.tokenSalt === 'string' && /^([0-9a-f]{32,128})?$/.test(raw.tokenSalt) ? raw.tokenSalt : '';
    return new OperatorSettingsStore(file, {
      maintenance: holdOf(raw.maintenance),
      paused: holdOf(raw.paused),
      tokenSalt: salt,
      tokenRotatedAt: typeof raw.tokenRotatedAt === 'number' ? raw.tokenRotatedAt : 0,
    });
  }

  get(): Readonly<OperatorSettings> {
    return this.state;
  }

  /** Changes the settings at once and persists them (writes run one after another). */
  async update(patch: Partial<OperatorSettings>): Promise<void> {
    this.state = { ...this.state, ...patch };
    const written = this.writing.then(() => this.write());
    this.writing = written.catch(() => undefined);
    await written;
  }

  private write(): Promise<void> {
    return writeFileAtomic(this.file, `${JSON.stringify(this.state, null, 2)}\n`);
  }
}
