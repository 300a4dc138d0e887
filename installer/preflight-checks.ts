// The verdicts of `tandem check` (also run by install): each check is ok, warn or fail, and every
// warn and fail says what to do about it. Pure: preflight-facts.ts observes the node, this file
// judges, so every verdict is tested on facts without arranging a broken machine.
import path from 'node:path';
import { AUTH_MAX_SKEW_MS } from '../agent/channel/channel-auth.ts';
import { formatBytes } from '../shared/sizes.ts';
import type { ModuleSpec } from './modules/index.ts';

export type CheckLevel = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  id: 'node' | 'user' | 'protect' | 'disk' | 'inotify' | 'ports' | 'peer' | 'clock' | 'programs' | 'modules';
  title: string;
  level: CheckLevel;
  detail: string;
  /** What to do, for every warn and fail. */
  fix?: string;
}

export interface PreflightFacts {
  nodeVersion: string;
  uid: number;
  protectedDirs: { path: string; state: 'ok' | 'missing' | 'not-dir' | 'unreadable'; entries?: number; error?: string }[];
  /**
   * How each protected directory would be captured (agent/points: the same verdict as the
   * agent's at start-up), parallel to protectedDirs; undefined for one that does not exist.
   */
  consistency?: ({ mode: 'snapshot' | 'file'; reason: string; refused?: string } | undefined)[];
  /** Free bytes where the state directory is (or will be). */
  disk: { path: string; freeBytes: number } | { path: string; error: string };
  inotify: { maxUserWatches: number | undefined; dirs: number; capped: boolean };
  ports: { key: string; host: string; port: number; state: 'free' | 'in-use' | 'not-local' | 'ours' | 'error'; error?: string }[];
  peer: { name: string; host: string; port: number; state: 'open' | 'refused' | 'unreachable' | 'timeout' | 'error'; error?: string };
  /** The peer's presence answer: the clock of its agent, signed with the pair key. */
  presence: { state: 'unconfigured' | 'no-key' | 'alive' | 'dead' | 'unreachable' | 'stalled' | 'invalid' | 'error'; skewMs?: number; rttMs?: number; error?: string };
  programs: { name: string; found: boolean; neededBy: string }[];
}

export interface PreflightContext {
  /** primary/secondary: at install time (nothing runs yet); installed: tandem check afterwards. */
  mode: 'primary' | 'secondary' | 'installed';
  node: string;
  journalMaxBytes: number;
  /** As the answers name them (no --root prefix), parallel to facts.protectedDirs. */
  protectedSystemPaths: string[];
  modules: ModuleSpec[];
  /** How the peer gets installed, for the primary's "not reachable yet" advice. */
  peerInstallHint?: string;
}

/** The lowest Node.js release Tandem runs on (package.json engines). */
export const MIN_NODE = [20, 19, 0] as const;

/** Skew beyond which the pair is at risk: the channel refuses handshakes past AUTH_MAX_SKEW_MS. */
export const CLOCK_FAIL_MS = 60_000;
export const CLOCK_WARN_MS = 1_000;

/** Debian packages of the programs the modules call. */
const PACKAGE_OF: Record<string, string> = { ping: 'iputils-ping', ip: 'iproute2', arping: 'iputils-arping', systemctl: 'systemd', runuser: 'util-linux', setsid: 'util-linux', sort: 'coreutils' };

function versionAtLeast(v: string, min: readonly number[]): boolean {
  const parts = v.replace(/^v/, '').split('.').map((x) => Number.parseInt(x, 10));
  for (let i = 0; i < min.length; i++) {
    const a = parts[i] ?? 0;
    if (a !== min[i]) return a > min[i]!;
  }
  return true;
}

function worst(levels: CheckLevel[]): CheckLevel {
  return levels.includes('fail') ? 'fail' : levels.includes('warn') ? 'warn' : 'ok';
}

export function evaluatePreflight(f: PreflightFacts, c: PreflightContext): CheckResult[] {
  const out: CheckResult[] = [];
  const minNode = MIN_NODE.join('.');

  out.push(
    versionAtLeast(f.nodeVersion, MIN_NODE)
      ? { id: 'node', title: `Node.js ${minNode} or later`, level: 'ok', detail: f.nodeVersion }
      : { id: 'node', title: `Node.js ${minNode} or later`, level: 'fail', detail: `this is Node.js ${f.nodeVersion}`, fix: `install Node.js ${minNode} or a later 20.x or 22.x (Debian: the NodeSource packages, or nvm), then run the install again` },
  );

  out.push(
    f.uid === 0
      ? { id: 'user', title: 'running as root', level: 'ok', detail: 'owners and modes of replicated files can be kept' }
      : { id: 'user', title: 'running as root', level: 'warn', detail: `running as uid ${f.uid}: the agent cannot give replicated files their owners, nor run scripts that need root`, fix: 'run tandem install and the agent as root (sudo tandem install …)' },
  );

  {
    const lines: string[] = [];
    const fixes: string[] = [];
    const levels: CheckLevel[] = [];
    f.protectedDirs.forEach((d, i) => {
      const shown = c.protectedSystemPaths[i] ?? d.path;
      switch (d.state) {
        case 'ok':
          if (c.mode === 'secondary' && (d.entries ?? 0) > 0) {
            levels.push('warn');
            lines.push(`${shown} holds ${d.entries} entries: the primary's copy replaces them at the first synchronisation`);
            fixes.push(`move what you want to keep out of ${d.path} before the agents connect`);
          } else {
            levels.push('ok');
            lines.push(`${shown} readable${d.entries === undefined ? '' : ` (${d.entries} entries)`}`);
          }
          {
            // Whether a failover presents an instant of the directory or file-level copies
            // (docs/replication.md, "Consistency points"): said here, as status says it.
            const v = f.consistency?.[i];
            if (v !== undefined) {
              lines[lines.length - 1] += v.mode === 'snapshot' ? ', consistency points (btrfs subvolume)' : `, ${v.reason}`;
              if (v.refused !== undefined) {
                levels.push('fail');
                fixes.push(`${shown} is set to consistency: snapshot but ${v.refused}: make it a btrfs subvolume (btrfs subvolume create), install btrfs-progs and run as root, or set consistency: auto`);
              }
            }
          }
          break;
        case 'missing':
          if (c.mode === 'primary') {
            levels.push('warn');
            lines.push(`${shown} does not exist: it will be created empty`);
            fixes.push(`if ${shown} should hold data already (a mount, another path), create or mount ${d.path} first and run the install again`);
          } else if (c.mode === 'secondary') {
            levels.push('ok');
            lines.push(`${shown} will be created for the primary's copy`);
          } else {
            levels.push('fail');
            lines.push(`${shown} does not exist`);
            fixes.push(`create or mount ${d.path}`);
          }
          break;
        case 'not-dir':
          levels.push('fail');
          lines.push(`${shown} is not a directory`);
          fixes.push(`protect a directory: move ${d.path} away or name its directory in the answers (protect:)`);
          break;
        case 'unreadable':
          levels.push('fail');
          lines.push(`${shown} cannot be read (${d.error ?? 'permission denied'})`);
          fixes.push(`run as root, or fix its permissions: chmod u+rx ${d.path}`);
          break;
      }
    });
    const level = worst(levels);
    out.push({ id: 'protect', title: 'protected directories', level, detail: lines.join('; '), ...(fixes.length > 0 ? { fix: fixes.join('; ') } : {}) });
  }

  {
    const d = f.disk;
    const need = c.journalMaxBytes;
    const comfortable = need * 1.2 + 256 * 1024 * 1024;
    if ('error' in d) out.push({ id: 'disk', title: 'free disk for the journal', level: 'warn', detail: `cannot read the free space of ${d.path}: ${d.error}`, fix: `make sure ${d.path} has ${formatBytes(need)} free (journal.maxBytes)` });
    else {
      const level: CheckLevel = d.freeBytes >= comfortable ? 'ok' : d.freeBytes >= need ? 'warn' : 'fail';
      const detail = `${formatBytes(d.freeBytes)} free at ${d.path}; the journal may take ${formatBytes(need)} (journal.maxBytes)`;
      out.push(level === 'ok' ? { id: 'disk', title: 'free disk for the journal', level, detail } : { id: 'disk', title: 'free disk for the journal', level, detail, fix: `free space on the file system of ${d.path} (at least ${formatBytes(comfortable)} is comfortable), or lower the bound: ${smallerJournal(d.freeBytes)} in the answers (journal.* in tandem.yaml)` });
    }
  }

  {
    const n = f.inotify;
    const max = n.maxUserWatches;
    const dirs = `${n.capped ? 'more than ' : ''}${n.dirs} director${n.dirs === 1 ? 'y' : 'ies'}`;
    // One watch per directory (agent/capture watches directories, not files), plus room for the
    // tree to grow and for the other programs of the same user.
    const want = Math.max(524_288, 2 ** Math.ceil(Math.log2(Math.max(1, n.dirs) * 2)));
    const fix = `sysctl -w fs.inotify.max_user_watches=${want} && echo fs.inotify.max_user_watches=${want} > /etc/sysctl.d/90-tandem.conf`;
    if (max === undefined) out.push({ id: 'inotify', title: 'inotify watches', level: 'warn', detail: `cannot read fs.inotify.max_user_watches; the protected tree has ${dirs}`, fix: `make sure fs.inotify.max_user_watches exceeds ${n.dirs}: ${fix}` });
    else if (n.dirs > max || n.capped) out.push({ id: 'inotify', title: 'inotify watches', level: 'fail', detail: `the protected tree has ${dirs}, one watch each, and fs.inotify.max_user_watches is ${max}: changes in the rest would go unseen`, fix });
    else if (n.dirs > max / 2) out.push({ id: 'inotify', title: 'inotify watches', level: 'warn', detail: `the protected tree has ${dirs} (one watch each), more than half of fs.inotify.max_user_watches (${max})`, fix });
    else out.push({ id: 'inotify', title: 'inotify watches', level: 'ok', detail: `${dirs} to watch, fs.inotify.max_user_watches ${max}` });
  }

  {
    const bad = f.ports.filter((p) => p.state !== 'free' && p.state !== 'ours');
    const shown = (p: PreflightFacts['ports'][number]) => `${p.host}:${p.port} (${p.key})`;
    if (bad.length === 0) {
      const ours = f.ports.some((p) => p.state === 'ours');
      out.push({ id: 'ports', title: 'ports free', level: 'ok', detail: `${f.ports.map(shown).join(', ')} ${ours ? 'held by this node\'s agent' : 'free'}` });
    } else {
      const fixes = bad.map((p) =>
        p.state === 'in-use'
          ? `ss -ltnp 'sport = :${p.port}' shows what holds ${p.port}: stop it, or choose another port for ${p.key} in the answers`
          : p.state === 'not-local'
            ? `${p.host} is not an address of this server: ${p.key} must name one of its addresses (ip -br addr)`
            : `${p.key}: ${p.error ?? 'cannot listen'}`,
      );
      out.push({ id: 'ports', title: 'ports free', level: 'fail', detail: bad.map((p) => `${shown(p)} ${p.state === 'in-use' ? 'is in use' : p.state === 'not-local' ? 'is not an address of this server' : `cannot be listened on: ${p.error ?? ''}`}`).join('; '), fix: fixes.join('; ') });
    }
  }

  {
    const p = f.peer;
    const where = `${p.host}:${p.port}`;
    if (p.state === 'open') out.push({ id: 'peer', title: 'peer reachable on the channel', level: 'ok', detail: `${p.name} answers on ${where}` });
    else {
      const why = p.state === 'refused' ? 'the server answers but nothing listens there yet' : p.state === 'timeout' ? 'no answer (a firewall, or the server is down)' : p.state === 'unreachable' ? 'no route to it' : (p.error ?? 'error');
      const fix =
        c.mode === 'primary'
          ? `install ${p.name}: ${c.peerInstallHint ?? `tandem install secondary --from PACK on ${p.name}`}. This install goes on without it: the agents connect once both run. The channel needs TCP ${p.port} open both ways between the two servers.`
          : `start ${p.name}'s agent (systemctl start tandem on ${p.name}) and open TCP ${p.port} both ways between the servers; this install goes on: the agents connect once both run`;
      out.push({ id: 'peer', title: 'peer reachable on the channel', level: 'warn', detail: `${p.name} on ${where}: ${why}`, fix });
    }
  }

  {
    const pr = f.presence;
    const title = 'clock skew with the peer';
    if (pr.state === 'alive' && pr.skewMs !== undefined) {
      const abs = Math.abs(pr.skewMs);
      const detail = `${f.peer.name}'s clock is ${pr.skewMs >= 0 ? 'ahead' : 'behind'} by ${abs < 1000 ? `${Math.round(abs)} ms` : `${(abs / 1000).toFixed(1)} s`} (measured within ${Math.round(pr.rttMs ?? 0)} ms)`;
      const fix = `run NTP on both servers (timedatectl set-ntp true, or chrony); the channel refuses a peer more than ${AUTH_MAX_SKEW_MS / 1000} s off`;
      out.push(abs > CLOCK_FAIL_MS ? { id: 'clock', title, level: 'fail', detail, fix } : abs > CLOCK_WARN_MS ? { id: 'clock', title, level: 'warn', detail, fix } : { id: 'clock', title, level: 'ok', detail });
    } else if (pr.state === 'unconfigured') {
      out.push({ id: 'clock', title, level: 'warn', detail: `${f.peer.name} has no presence address (nodes.${f.peer.name}.public): its clock cannot be read, and without it this node cannot tell the peer gone from cut off, so it never fails over by itself`, fix: `give both nodes a public address in the answers (nodes.NODE.public)` });
    } else if (pr.state === 'no-key') {
      out.push({ id: 'clock', title, level: 'warn', detail: `not measured: ${f.peer.name} holds no pair key yet (it is installed after this node)`, fix: 'run tandem check on either node once both agents run' });
    } else if (pr.state === 'invalid') {
      out.push({ id: 'clock', title, level: 'fail', detail: `something answers on ${f.peer.name}'s presence address but cannot prove it holds this pair's key: ${pr.error ?? ''}`, fix: `nodes.${f.peer.name}.public must point at ${f.peer.name}'s agent of this pair; both nodes must hold the same pair key` });
    } else {
      out.push({ id: 'clock', title, level: 'warn', detail: `not measured: ${f.peer.name}'s agent does not answer on its presence address yet (${pr.state}${pr.error === undefined ? '' : `: ${pr.error}`})`, fix: `run tandem check again once both agents run` });
    }
  }

  {
    const missing = f.programs.filter((p) => !p.found);
    if (missing.length === 0) out.push({ id: 'programs', title: 'programs the scripts need', level: 'ok', detail: f.programs.length === 0 ? 'none' : [...new Set(f.programs.map((p) => p.name))].join(', ') });
    else {
      const pkgs = [...new Set(missing.map((p) => PACKAGE_OF[p.name] ?? p.name))];
      out.push({ id: 'programs', title: 'programs the scripts need', level: 'fail', detail: missing.map((p) => `${p.name} (for ${p.neededBy}) is not installed`).join('; '), fix: `install them: apt-get install ${pkgs.join(' ')}` });
    }
  }

  {
    const problems: string[] = [];
    const fixes: string[] = [];
    for (const m of c.modules) {
      if (m.module === 'postgresql' && !c.protectedSystemPaths.some((p) => m.dataDir === p || isInside(m.dataDir, p))) {
        problems.push(`the PostgreSQL data directory ${m.dataDir} is in no protected directory: the peer would start an old or empty database`);
        fixes.push(`protect ${m.dataDir} (or a directory above it) in the answers (protect:)`);
      }
      if (m.module === 'dns' && m.addresses[c.node] === undefined) {
        problems.push(`the DNS module names no address for ${c.node}`);
        fixes.push(`add ${c.node} under addresses: of the dns module`);
      }
    }
    out.push(problems.length === 0 ? { id: 'modules', title: 'application modules', level: 'ok', detail: c.modules.length === 0 ? 'none' : c.modules.map((m) => m.module).join(', ') } : { id: 'modules', title: 'application modules', level: 'fail', detail: problems.join('; '), fix: fixes.join('; ') });
  }
  return out;
}

/** A journal bound that fits in half of `free`, as settings the config accepts (maxBytes ≥ 2 segments). */
function smallerJournal(free: number): string {
  const mib = Math.max(16, Math.floor(free / 2 / 1024 ** 2));
  return mib >= 128 ? `settings: { journal: { maxBytes: ${mib}MiB } }` : `settings: { journal: { maxBytes: ${mib}MiB, segmentBytes: ${Math.max(4, Math.floor(mib / 4))}MiB } }`;
}

function isInside(child: string, parent: string): boolean {
  const rel = path.posix.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.posix.isAbsolute(rel);
}

/** The human form: one line per check, its fix under each warn and fail. */
export function formatChecks(results: CheckResult[]): string {
  const tag = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
  return results
    .map((r) => `  ${tag[r.level]}  ${r.title}: ${r.detail}${r.fix === undefined ? '' : `\n        fix: ${r.fix}`}`)
    .join('\n');
}
