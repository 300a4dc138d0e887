// The pair on one screen, as crm_mon and `patronictl list` show a cluster: both nodes' own
// status documents side by side, read from each agent's control API. A node that does not
// answer is shown as such, with the error, never guessed from what its peer says. Reading is
// I/O; rendering, the JSON shape and what counts as a change are pure.
import type { AgentStatus } from '../agent/control/index.ts';
import type { PairAddresses, PairNode } from '../shared/config/pair-addresses.ts';
import { TandemError } from '../shared/errors.ts';
import { formatBytes } from '../shared/sizes.ts';
import { controlUrlOf } from './control-client.ts';

export type NodeView = { name: string; url: string; asked: boolean } & ({ ok: true; status: AgentStatus } | { ok: false; error: TandemError });

export interface PairView {
  pair: string;
  /** Both nodes: the one whose config was given first. */
  nodes: [NodeView, NodeView];
  /** When it was read (wall clock, ms). */
  at: number;
}

export async function readPairView(a: PairAddresses, fetchStatus: (url: string) => Promise<AgentStatus>, now: () => number): Promise<PairView> {
  const read = async (n: PairNode, asked: boolean): Promise<NodeView> => {
    const url = controlUrlOf(n);
    try {
      return { name: n.name, url, asked, ok: true, status: await fetchStatus(url) };
    } catch (err) {
      return { name: n.name, url, asked, ok: false, error: TandemError.wrap(err, { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', op: `GET ${url}/v1/status` }) };
    }
  };
  const [self, peer] = await Promise.all([read(a.self, true), read(a.peer, false)]);
  return { pair: a.pair, nodes: [self, peer], at: now() };
}

/**
 * `tandem status --json`: the asked node's own status document at the top level, exactly as
 * GET /v1/status answers it (DESIGN.md's stable interface), plus `nodes`, both nodes each with
 * its status or its error. When the asked node does not answer, the top level has its name,
 * the pair and its `error` instead of the document.
 */
export function pairViewJson(v: PairView): Record<string, unknown> {
  const asked = v.nodes[0];
  const nodes = v.nodes.map((n) => (n.ok ? { name: n.name, url: n.url, ok: true, status: n.status } : { name: n.name, url: n.url, ok: false, error: n.error.toJSON() }));
  if (asked.ok) return { ...asked.status, nodes };
  return { node: asked.name, pair: v.pair, error: asked.error.toJSON(), nodes };
}

/**
 * What `--watch` redraws on: roles, states, serving, epochs, sync and lag, links, alarms, the
 * last role change, who answers. Not the figures that move every second on a quiet pair
 * (heartbeat ages, byte counters, round-trip jitter).
 */
export function pairViewKey(v: PairView): string {
  return JSON.stringify(
    v.nodes.map((n) => {
      if (!n.ok) return { n: n.name, down: n.error.code };
      const s = n.status;
      const r = s.replication;
      return [s.node, s.role, s.state, s.generation, s.failover.serving, s.failover.epoch, s.failover.phase, s.failover.pending, s.peer.connected, s.links.channel, s.links.public, r.headSeq, r.appliedSeq, r.inSync, Math.round(r.lagMs / 100), r.sync?.bytesDone ?? null, r.catchUp?.bytesLeft ?? null, r.splitBrain !== null, s.alarms.map((a) => `${a.code} ${a.message}`), s.failover.lastRoleChange?.at ?? null, s.pid];
    }),
  );
}

const clock = (ms: number) => new Date(ms).toTimeString().slice(0, 8);

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}

function rtt(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** One line that says what matters most: who serves, and whether the passive has everything. */
function headline(v: PairView): string {
  const up = v.nodes.filter((n): n is NodeView & { ok: true } => n.ok);
  const down = v.nodes.filter((n) => !n.ok).map((n) => `${n.name} does not answer`);
  const active = up.filter((n) => n.status.role === 'active');
  const parts: string[] = [];
  if (active.length > 1) parts.push(`TWO ACTIVE NODES: ${active.map((n) => n.name).join(', ')}`);
  else if (active.length === 1) {
    const a = active[0]!.status;
    parts.push(`${a.node} active${a.failover.serving ? ' and serving' : ', NOT serving'}`);
    parts.push(a.peer.connected ? (a.replication.inSync ? `${a.peer.name} in sync` : `${a.peer.name} NOT in sync`) : `${a.peer.name} not connected`);
  } else if (up.length > 0) parts.push('no node is active');
  parts.push(...down);
  return parts.join('; ');
}

/** The screen of `tandem status`. */
export function formatPairView(v: PairView): string {
  const rows: string[][] = [['NODE', 'ROLE', 'STATE', 'SERVING', 'EPOCH', 'APPLIED/HEAD', 'LAG', 'CHANNEL', 'RTT', 'PUBLIC']];
  for (const n of v.nodes) {
    if (!n.ok) {
      rows.push([n.name, '?', 'no answer', '?', '?', '?', '?', '?', '?', '?']);
      continue;
    }
    const s = n.status;
    const r = s.replication;
    rows.push([n.name, s.role, s.state, s.failover.serving ? 'yes' : 'no', String(s.failover.epoch), `${r.appliedSeq}/${r.headSeq}`, `${r.lagMs} ms`, s.links.channel, rtt(s.links.heartbeat.rttMs), s.links.public]);
  }
  const lines = [`Pair ${v.pair}: ${headline(v)}   (${clock(v.at)})`, '', ...table(rows), ''];
  const w = Math.max(...v.nodes.map((n) => n.name.length));
  const name = (n: NodeView) => n.name.padEnd(w);

  lines.push('Last role change');
  for (const n of v.nodes) {
    if (!n.ok) {
      lines.push(`  ${name(n)}  does not answer at ${n.url}: ${n.error.reason}`);
      continue;
    }
    const s = n.status;
    const c = s.failover.lastRoleChange;
    if (c === null || c === undefined) lines.push(`  ${name(n)}  ${s.role} since its agent started ${clock(s.startedAt)} (${ago(s.startedAt, v.at)}): ${s.failover.reason}`);
    else lines.push(`  ${name(n)}  ${c.from} → ${c.to} at ${clock(c.at)} (${ago(c.at, v.at)}), epoch ${c.epoch}: ${c.reason}`);
  }

  const progress: string[] = [];
  for (const n of v.nodes) {
    if (!n.ok) continue;
    const r = n.status.replication;
    if (r.sync !== null) {
      const pct = r.sync.bytesTotal > 0 ? ((100 * r.sync.bytesDone) / r.sync.bytesTotal).toFixed(1) : '0.0';
      const eta = r.sync.etaMs === null ? 'unknown' : `${Math.round(r.sync.etaMs / 1000)} s`;
      progress.push(`  ${name(n)}  synchronising: ${formatBytes(r.sync.bytesDone)} of ${formatBytes(r.sync.bytesTotal)} (${pct}%), ETA ${eta}`);
    }
    if (r.catchUp !== null) progress.push(`  ${name(n)}  catching up: ${formatBytes(r.catchUp.bytesLeft)} in ${r.catchUp.pathsLeft} path(s) left`);
    if (r.splitBrain !== null) progress.push(`  ${name(n)}  SPLIT BRAIN since sequence ${r.splitBrain.commonSeq}: ${r.splitBrain.activeChanges} records on the active, ${r.splitBrain.passiveChanges} on the passive`);
    const c = n.status.capture;
    if (c !== null && (c.pendingPaths > 0 || c.waitingForSpace)) progress.push(`  ${name(n)}  capture: ${c.pendingPaths} path(s) pending${c.waitingForSpace ? ', WAITING FOR JOURNAL SPACE' : ''}`);
  }
  if (progress.length > 0) lines.push('', 'Replication', ...progress);

  const alarms: string[] = [];
  for (const n of v.nodes) {
    if (!n.ok) continue;
    for (const a of n.status.alarms) {
      alarms.push(`  ${name(n)}  ${a.code}: ${a.message}`);
      if (a.hint !== undefined) alarms.push(`  ${' '.repeat(w)}  hint: ${a.hint}`);
    }
  }
  lines.push('', 'Alarms', ...(alarms.length > 0 ? alarms : ['  none']));
  return `${lines.join('\n')}\n`;
}
