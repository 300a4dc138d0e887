// The console's sections, drawn from the two nodes' readings: the node cards, replication
// figures and progress, charts, links, protected data and the event list. Each function
// replaces its section's content; none holds a focusable control, so redrawing every second
// never moves a keyboard user's focus (the actions, which do, are in actions.ts).
import type { AgentStatus } from '../../agent/control/status.ts';
import type { TandemEvent } from '../../agent/events/event.ts';
import { renderChart } from './chart-view.ts';
import { badge, byId, fill, h } from './dom.ts';
import { changeText, filterEvents, type EventFilter } from './event-filter.ts';
import { ProgressMeter, type Series } from './figures.ts';
import { ago, dateTime, formatBytes, formatCount, formatDuration, formatRate, formatRtt, percent } from './format.ts';
import { nodeFacts, roleBadge, syncDelivered, type NodeReading } from './pair-model.ts';

type Up = NodeReading & { ok: true };

export function answering(nodes: readonly NodeReading[]): Up[] {
  return nodes.filter((n): n is Up => n.ok);
}

/** The node whose view of replication counts: the active that answers, else any that answers. */
export function activeOf(nodes: readonly NodeReading[]): Up | undefined {
  const up = answering(nodes);
  return up.find((n) => n.status.role === 'active') ?? undefined;
}

export function renderNodes(nodes: readonly NodeReading[], self: string, events: readonly TandemEvent[], now: number): void {
  fill(
    'nodes',
    ...nodes.map((n) => {
      const b = roleBadge(n);
      const alarms = n.ok ? n.status.alarms : [];
      return h(
        'article',
        { class: `node card ${n.ok ? n.status.role : 'down'}`, 'aria-labelledby': `node-${n.name}-title`, 'data-node': n.name, 'data-role': n.ok ? n.status.role : 'unknown', 'data-state': n.ok ? n.status.state : 'not-answering' },
        h('h3', { id: `node-${n.name}-title` }, h('span', { class: 'node-name' }, n.name), ' ', badge(b.text, b.level), n.name === self ? h('span', { class: 'here' }, ' this console') : null),
        h('dl', { class: 'facts' }, ...nodeFacts(n, events, now).flatMap((f) => [h('dt', {}, f.label), h('dd', { class: f.level === undefined ? '' : `level-${f.level}` }, f.value)])),
        alarms.length === 0
          ? null
          : h(
              'div',
              { class: 'alarms' },
              h('h4', {}, 'Alarms'),
              h('ul', {}, ...alarms.map((a) => h('li', {}, h('strong', {}, a.code), ': ', a.message, a.hint === undefined ? null : h('span', { class: 'hint' }, ` What to do: ${a.hint}`), a.since === undefined ? null : h('span', { class: 'since' }, ` (since ${ago(a.since, now)})`)))),
            ),
      );
    }),
  );
}

function figure(label: string, value: string, id?: string): HTMLElement {
  return h('div', {}, h('dt', {}, label), h('dd', id === undefined ? {} : { 'data-figure': id }, value));
}

export function renderReplication(nodes: readonly NodeReading[], series: Map<string, Series>, now: number): void {
  const a = activeOf(nodes);
  if (a === undefined) {
    fill('replication-figures', h('p', {}, 'No active node answers: nothing is being replicated that this page can see.'));
    return;
  }
  const r = a.status.replication;
  const s = series.get(a.name);
  const sent = s?.recentRate((x) => x.bytesOut) ?? null;
  const passive = nodes.find((n) => n.name === a.status.peer.name);
  const ps = passive === undefined ? undefined : series.get(passive.name);
  const applied = ps?.recentRate((x) => x.appliedSeq) ?? s?.recentRate((x) => x.appliedSeq) ?? null;
  fill(
    'replication-figures',
    h(
      'dl',
      { class: 'figures' },
      figure('From → to', `${a.name} → ${a.status.peer.name}${a.status.peer.connected ? '' : ' (not connected)'}`),
      figure('Changes applied', `${formatCount(r.appliedSeq)} of ${formatCount(r.headSeq)}${a.status.peer.connected ? '' : ' (as last acknowledged)'}`, 'applied'),
      figure('Behind by', a.status.peer.connected ? `${formatCount(Math.max(0, r.headSeq - r.appliedSeq))} changes, ${formatDuration(r.lagMs)}` : `unknown: ${a.status.peer.name} is not connected`, 'lag'),
      figure('Queued', formatBytes(r.queueBytes), 'queue'),
      figure('Sent on the channel', `${formatRate(sent)} (${formatBytes(a.status.channel.bytesOut)} since ${a.name}'s agent started ${ago(a.status.startedAt, now)})`, 'sent'),
      figure('Changes per second', applied === null ? '-' : applied.toFixed(1), 'rate'),
      figure('Paused', r.paused ? 'yes, by an operator' : 'no'),
    ),
  );
}

const syncMeter = new ProgressMeter();
const catchUpMeter = new ProgressMeter();

function bar(label: string, value: number, max: number, text: string, id: string): HTMLElement {
  return h('div', { class: 'progress', 'data-progress': id }, h('label', { for: `bar-${id}` }, label), h('progress', { id: `bar-${id}`, max: Math.max(1, max), value: Math.max(0, Math.min(value, max)) }), h('p', { class: 'progress-text' }, text));
}

export function renderProgress(nodes: readonly NodeReading[], _series: Map<string, Series>): void {
  const a = activeOf(nodes);
  const r = a?.status.replication;
  const now = Date.now();
  const parts: HTMLElement[] = [];
  if (a !== undefined && r?.sync != null) {
    // What the passive has received, not what the active has read: the journal runs ahead of the channel.
    const got = syncDelivered(a.status);
    const m = syncMeter.observe(`${a.name} ${r.sync.id}`, now, r.sync.bytesTotal - got, got);
    parts.push(bar(`Synchronising ${a.status.peer.name}`, got, r.sync.bytesTotal, `${formatBytes(got)} of ${formatBytes(r.sync.bytesTotal)} (${percent(got, r.sync.bytesTotal).toFixed(1)}%), ${formatRate(m.rate)}, ${m.etaMs === null ? 'time left unknown yet' : `about ${formatDuration(m.etaMs)} left`}`, 'sync'));
  } else syncMeter.reset();
  if (a !== undefined && r?.catchUp != null) {
    const m = catchUpMeter.observe(`${a.name} catch-up`, now, r.catchUp.bytesLeft);
    parts.push(bar(`${a.status.peer.name} catching up`, m.done, m.total, `${formatBytes(r.catchUp.bytesLeft)} in ${formatCount(r.catchUp.pathsLeft)} paths left, ${formatRate(m.rate)}, ${m.etaMs === null ? 'time left unknown yet' : `about ${formatDuration(m.etaMs)} left`}`, 'catch-up'));
  } else catchUpMeter.reset();
  if (parts.length === 0) {
    if (a === undefined) parts.push(h('p', {}, 'No active node answers.'));
    else if (!a.status.peer.connected) parts.push(h('p', { 'data-progress': 'waiting' }, `${a.status.peer.name} is not connected: changes are kept in ${a.name}'s journal until it is.`));
    else if (r!.queueBytes > 0 || r!.headSeq > r!.appliedSeq) parts.push(h('p', { 'data-progress': 'queue' }, `Sending: ${formatBytes(r!.queueBytes)} queued, ${formatCount(Math.max(0, r!.headSeq - r!.appliedSeq))} changes to apply.`));
    else parts.push(h('p', { 'data-progress': 'idle' }, `Nothing waiting: ${a.status.peer.name} has applied everything ${a.name} journaled.`));
  }
  fill('progress', ...parts);
}

export function renderCharts(names: string[], series: Map<string, Series>, from: number, to: number): void {
  const lines = (pick: (s: Series) => ReturnType<Series['points']>) => names.map((n) => ({ label: n, points: series.get(n) === undefined ? [] : pick(series.get(n)!) }));
  renderChart(byId('chart-lag'), 'Replication lag', lines((s) => s.points((x) => x.lagMs)), from, to, (v) => formatDuration(v), 10);
  renderChart(byId('chart-throughput'), 'Sent on the channel', lines((s) => s.rate((x) => x.bytesOut)), from, to, (v) => formatRate(v), 1024);
  renderChart(byId('chart-rtt'), 'Heartbeat round-trip', lines((s) => s.points((x) => (x.channelUp ? x.rttMs : null))), from, to, (v) => formatRtt(v), 1);
}

function cell(n: NodeReading, f: (s: AgentStatus) => HTMLElement | string): HTMLElement {
  return h('td', {}, n.ok ? f(n.status) : badge('no answer', 'bad'));
}

const upDown = (v: string) => badge(v, v === 'up' || v === 'alive' ? 'ok' : v === 'unknown' || v === 'unconfigured' ? 'idle' : 'bad');

export function renderLinks(nodes: readonly NodeReading[], now: number): void {
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Link'), ...nodes.map((n) => h('th', { scope: 'col' }, `seen from ${n.name}`)));
  const row = (label: string, f: (s: AgentStatus) => HTMLElement | string) => h('tr', {}, h('th', { scope: 'row' }, label), ...nodes.map((n) => cell(n, f)));
  fill(
    'links',
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', {}, 'The replication channel (heartbeats ride on it) and each node\'s public network'),
        h('thead', {}, head),
        h(
          'tbody',
          {},
          row('Channel', (s) => upDown(s.links.channel)),
          row('Heartbeat round-trip', (s) => formatRtt(s.links.heartbeat.rttMs)),
          row('Last heartbeat', (s) => (s.links.heartbeat.lastHeardMsAgo === null ? 'none yet' : `${formatDuration(s.links.heartbeat.lastHeardMsAgo)} ago`)),
          row('Longest silence', (s) => formatDuration(s.links.heartbeat.longestGapMs)),
          row('Public network (own checks)', (s) => upDown(s.links.public)),
          row('Peer\'s presence on it', (s) => upDown(s.failover.presence)),
        ),
      ),
    ),
  );
  void now;
}

export function renderRoots(nodes: readonly NodeReading[]): void {
  const a = activeOf(nodes) ?? answering(nodes)[0];
  const names = [...new Set(answering(nodes).flatMap((n) => (n.status.roots ?? []).map((r) => r.name)))];
  if (names.length === 0) {
    fill('roots', h('p', {}, a === undefined ? 'No node answers.' : 'The agents do not report their protected roots (an older version).'));
    return;
  }
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Root'), h('th', { scope: 'col' }, 'Path'), ...nodes.map((n) => h('th', { scope: 'col' }, `on ${n.name}`)));
  fill(
    'roots',
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', {}, 'What each node holds of the protected directories (on the passive: what it has applied)'),
        h('thead', {}, head),
        h(
          'tbody',
          {},
          ...names.map((name) =>
            h(
              'tr',
              { 'data-root': name },
              h('th', { scope: 'row' }, name),
              h('td', { class: 'path' }, (a?.ok === true ? a.status.roots?.find((r) => r.name === name)?.path : undefined) ?? '-'),
              ...nodes.map((n) => {
                const r = n.ok ? n.status.roots?.find((x) => x.name === name) : undefined;
                return h('td', { 'data-node': n.name }, r === undefined ? (n.ok ? '-' : badge('no answer', 'bad')) : `${formatCount(r.files)} files, ${formatCount(r.dirs)} folders, ${formatBytes(r.bytes)}`);
              }),
            ),
          ),
        ),
      ),
    ),
  );
}

export function renderEvents(events: readonly TandemEvent[], f: EventFilter): void {
  const shown = filterEvents(events, f);
  if (shown.length === 0) {
    fill('events', h('p', {}, events.length === 0 ? 'No events yet.' : 'No event matches the filter.'));
    return;
  }
  fill(
    'events',
    h(
      'table',
      { class: 'events' },
      h('caption', {}, `The ${shown.length} most recent events${shown.length < events.length ? ' that match' : ''}, newest first`),
      h('thead', {}, h('tr', {}, ...['Time', 'Node', 'Kind', 'Change', 'Trigger', 'Reason'].map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        ...shown.map((e) =>
          h(
            'tr',
            { 'data-kind': e.kind, 'data-node': e.node, 'data-seq': e.seq },
            h('td', { class: 'time' }, dateTime(e.time)),
            h('td', {}, e.node),
            h('td', {}, e.kind),
            h('td', {}, changeText(e)),
            h('td', {}, e.trigger),
            h('td', { class: 'reason' }, e.reason),
          ),
        ),
      ),
    ),
  );
}
