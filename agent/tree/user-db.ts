// User and group names of this machine, both ways, for `replication.owners: names` (the active
// sends the name of each owner, the passive maps it back to its own id) and for status and
// verify. Node only knows the current user, so this reads /etc/passwd and /etc/group (re-read
// when they change, looked at most once a second) and asks `getent` (NSS: LDAP, sssd…) for
// what the files do not know, caching its answers, found or not, for a minute.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { Clock } from '../../shared/clock.ts';

export interface UserDbFiles {
  passwd: string;
  group: string;
}

const RECHECK_MS = 1000;
const GETENT_TTL_MS = 60_000;
const GETENT_TIMEOUT_MS = 1000;
/** Bounds the getent cache (one entry per id or name asked about). */
const MAX_GETENT_ENTRIES = 4096;

interface Table {
  byId: Map<number, string>;
  byName: Map<string, number>;
  mtimeMs: number;
  checkedAt: number;
}

/** Parses passwd/group lines: name:x:id:…; the first line for an id or a name wins, as getpwuid's does. */
export function parseIdFile(text: string): { byId: Map<number, string>; byName: Map<string, number> } {
  const byId = new Map<number, string>();
  const byName = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const f = line.split(':');
    if (f.length < 3) continue;
    const name = f[0]!;
    const id = Number(f[2]);
    if (name === '' || !Number.isSafeInteger(id) || id < 0 || f[2] === '') continue;
    if (!byId.has(id)) byId.set(id, name);
    if (!byName.has(name)) byName.set(name, id);
  }
  return { byId, byName };
}

export class UserDb {
  private readonly tables = new Map<'passwd' | 'group', Table>();
  private readonly getentCache = new Map<string, { value: string | number | undefined; at: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly files: UserDbFiles = { passwd: '/etc/passwd', group: '/etc/group' },
    /** Tests turn getent off to see the files alone. */
    private readonly useGetent = true,
  ) {}

  userName(uid: number): string | undefined {
    return this.nameOf('passwd', uid);
  }

  groupName(gid: number): string | undefined {
    return this.nameOf('group', gid);
  }

  uidOf(name: string): number | undefined {
    return this.idOf('passwd', name);
  }

  gidOf(name: string): number | undefined {
    return this.idOf('group', name);
  }

  private nameOf(db: 'passwd' | 'group', id: number): string | undefined {
    const found = this.table(db).byId.get(id);
    if (found !== undefined) return found;
    const v = this.getent(db, String(id));
    return typeof v === 'string' ? v : undefined;
  }

  private idOf(db: 'passwd' | 'group', name: string): number | undefined {
    const found = this.table(db).byName.get(name);
    if (found !== undefined) return found;
    // getent takes an all-digits key for an id: such a "name" cannot be looked up by name.
    if (/^\d+$/.test(name)) return undefined;
    const v = this.getent(db, name);
    return typeof v === 'number' ? v : undefined;
  }

  private table(db: 'passwd' | 'group'): Table {
    const now = this.clock.monotonic();
    const cur = this.tables.get(db);
    if (cur !== undefined && now - cur.checkedAt < RECHECK_MS) return cur;
    const file = this.files[db];
    let mtimeMs = -1;
    try {
      mtimeMs = fs.statSync(file).mtimeMs;
    } catch {
      // No such file: only getent answers.
    }
    if (cur !== undefined && cur.mtimeMs === mtimeMs) {
      cur.checkedAt = now;
      return cur;
    }
    let parsed = { byId: new Map<number, string>(), byName: new Map<string, number>() };
    try {
      parsed = parseIdFile(fs.readFileSync(file, 'utf8'));
    } catch {
      // Unreadable: as if empty.
    }
    const t: Table = { ...parsed, mtimeMs, checkedAt: now };
    this.tables.set(db, t);
    return t;
  }

  /** `getent passwd|group KEY`: a name when KEY is an id, an id when it is a name. */
  private getent(db: 'passwd' | 'group', key: string): string | number | undefined {
    if (!this.useGetent) return undefined;
    const k = `${db}\0${key}`;
    const now = this.clock.monotonic();
    const hit = this.getentCache.get(k);
    if (hit !== undefined && now - hit.at < GETENT_TTL_MS) return hit.value;
    let value: string | number | undefined;
    try {
      const out = execFileSync('getent', [db, key], { encoding: 'utf8', timeout: GETENT_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'ignore'] });
      const { byId, byName } = parseIdFile(out);
      value = /^\d+$/.test(key) ? byId.get(Number(key)) : byName.get(key);
    } catch {
      value = undefined; // not found (exit 2), or no getent here
    }
    if (this.getentCache.size >= MAX_GETENT_ENTRIES) this.getentCache.clear();
    this.getentCache.set(k, { value, at: now });
    return value;
  }
}
