// What an operator can do from the console, each through the control API of the node that must
// do it (this node's, or the peer's through it), each confirmed in a dialog that says what will
// happen, and each answered in words: done, or refused with the agent's reason. A button is
// only redrawn when what it offers changes, so keyboard focus stays where it is.
import type { AgentStatus } from '../../agent/control/status.ts';
import type { SwitchoverReadiness } from '../../agent/operator/switchover-readiness.ts';
import { call, nodePath } from './api.ts';
import { byId, h } from './dom.ts';
import { dateTime, formatBytes, formatCount, formatDuration, percent, timeOfDay } from './format.ts';
import type { NodeReading, PairSummary } from './pair-model.ts';
import { activeOf, answering } from './views.ts';

export interface ActionContext {
  app: { readonly self: string };
  /** The action running now (its buttons are disabled meanwhile). */
  busy: string | undefined;
  refresh(): void;
}

type Level = 'ok' | 'warn' | 'bad';

function showResult(text: string, level: Level): void {
  const el = byId('action-result');
  el.hidden = false;
  el.className = `message level-${level}`;
  el.textContent = `${timeOfDay(Date.now())}  ${text}`;
}

/** Redraws `id` only when `key` changed since the last time. */
function fillIfChanged(id: string, key: string, build: () => (Node | string | null)[]): void {
  const el = byId(id);
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  el.replaceChildren(...build().filter((x): x is Node | string => x !== null));
}

interface ConfirmOptions {
  title: string;
  body: (Node | string)[];
  ok: string | undefined;
  askReason?: boolean;
}

/** The confirmation dialog: resolves with the reason typed, or undefined when cancelled. */
function confirmAction(o: ConfirmOptions): Promise<string | undefined> {
  const dialog = byId<HTMLDialogElement>('confirm');
  byId('confirm-title').textContent = o.title;
  byId('confirm-body').replaceChildren(...o.body);
  const reasonBox = byId('confirm-reason');
  reasonBox.hidden = o.askReason !== true;
  const reason = byId<HTMLInputElement>('confirm-reason-text');
  reason.value = '';
  const ok = byId<HTMLButtonElement>('confirm-ok');
  ok.hidden = o.ok === undefined;
  ok.textContent = o.ok ?? '';
  byId('confirm-cancel').textContent = o.ok === undefined ? 'Close' : 'Cancel';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok' ? reason.value.trim() : undefined), { once: true });
    dialog.showModal();
    (o.ok === undefined ? byId('confirm-cancel') : o.askReason === true ? reason : ok).focus();
  });
}

async function act(ctx: ActionContext, label: string, work: () => Promise<{ text: string; level: Level }>): Promise<void> {
  ctx.busy = label;
  showResult(`${label}…`, 'warn');
  ctx.refresh();
  try {
    const r = await work();
    showResult(r.text, r.level);
  } finally {
    ctx.busy = undefined;
    ctx.refresh();
  }
}

/** A POST's outcome in words. */
async function post(path: string, timeoutMs = 15_000): Promise<{ ok: boolean; message: string }> {
  const r = await call<{ ok?: boolean; message?: string; verify?: unknown }>('POST', path, { timeoutMs });
  if (r.ok) return { ok: r.body.ok !== false, message: typeof r.body.message === 'string' ? r.body.message : 'done' };
  return { ok: false, message: `${r.error.message}${r.error.hint === undefined ? '' : ` (${r.error.hint})`}` };
}

async function switchover(ctx: ActionContext, a: AgentStatus): Promise<void> {
  const self = ctx.app.self;
  const plan = await call<SwitchoverReadiness>('GET', nodePath(self, a.node, 'switchover'));
  if (!plan.ok) return showResult(`Cannot ask ${a.node} what a switchover would do: ${plan.error.message}`, 'bad');
  const p = plan.body;
  const d = p.drain;
  const body: (Node | string)[] = p.ready
    ? [
        h('p', {}, `The application moves from ${p.from} to ${p.to}. Nothing written before the switchover is lost. What will happen:`),
        h('ol', {}, ...p.steps.map((s) => h('li', {}, s))),
        h('p', {}, `Left to send now: ${formatCount(d.records)} changes (${formatBytes(d.bytes)}), ${d.estimateMs === null ? 'drain time unknown' : `about ${formatDuration(d.estimateMs)} to drain`}. Clients see the application stop for about as long as the stop and start scripts take.`),
      ]
    : [h('p', { class: 'refusal' }, `A switchover cannot be done now: ${p.refusal ?? 'not ready'}.`), p.hint === null ? '' : h('p', {}, `What to do: ${p.hint}`)];
  const go = await confirmAction({ title: p.ready ? `Switch over from ${p.from} to ${p.to}?` : `Switchover from ${p.from} refused`, body, ok: p.ready ? `Switch over to ${p.to}` : undefined });
  if (go === undefined) return p.ready ? undefined : showResult(`Switchover refused: ${p.refusal ?? 'not ready'}`, 'bad');
  await act(ctx, `Switching over from ${p.from} to ${p.to}`, async () => {
    const r = await post(nodePath(self, a.node, 'switchover'), 135_000);
    return r.ok ? { text: `Switchover done: ${p.to} is active now (${r.message}).`, level: 'ok' } : { text: `Switchover refused or rolled back: ${r.message}`, level: 'bad' };
  });
}

async function pause(ctx: ActionContext, a: AgentStatus): Promise<void> {
  const self = ctx.app.self;
  if (a.replication.paused) {
    return act(ctx, 'Resuming replication', async () => {
      const r = await post(nodePath(self, a.node, 'replication/resume'));
      return r.ok ? { text: `Replication resumed: ${a.peer.name} catches up from the journal (${r.message}).`, level: 'ok' } : { text: `Resume refused: ${r.message}`, level: 'bad' };
    });
  }
  const reason = await confirmAction({
    title: `Pause replication from ${a.node} to ${a.peer.name}?`,
    body: [h('p', {}, `${a.node} keeps serving and keeps every change in its journal, but sends nothing to ${a.peer.name} until you resume. Meanwhile a failover would lose what ${a.peer.name} did not receive, and a switchover is refused.`)],
    ok: 'Pause replication',
    askReason: true,
  });
  if (reason === undefined) return;
  await act(ctx, 'Pausing replication', async () => {
    const r = await post(`${nodePath(self, a.node, 'replication/pause')}${reason === '' ? '' : `?reason=${encodeURIComponent(reason)}`}`);
    return r.ok ? { text: `Replication paused (${r.message}).`, level: 'ok' } : { text: `Pause refused: ${r.message}`, level: 'bad' };
  });
}

async function maintenance(ctx: ActionContext, nodes: readonly NodeReading[], on: boolean): Promise<void> {
  const self = ctx.app.self;
  const up = answering(nodes);
  let reason = '';
  if (on) {
    const r = await confirmAction({
      title: 'Turn maintenance on for both nodes?',
      body: [h('p', {}, 'While maintenance is on, no node fails over, switches over or restarts the application by itself; you still can by hand. Replication goes on.'), up.length < nodes.length ? h('p', { class: 'refusal' }, `${nodes.filter((n) => !n.ok).map((n) => n.name).join(', ')} does not answer: only ${up.map((n) => n.name).join(', ')} can be set.`) : '']
        .filter((x) => x !== ''),
      ok: 'Maintenance on',
      askReason: true,
    });
    if (r === undefined) return;
    reason = r;
  }
  await act(ctx, on ? 'Turning maintenance on' : 'Turning maintenance off', async () => {
    const q = `maintenance?on=${on ? 1 : 0}${reason === '' ? '' : `&reason=${encodeURIComponent(reason)}`}`;
    const answers = await Promise.all(nodes.map(async (n) => ({ node: n.name, ...(n.ok ? await post(nodePath(self, n.name, q)) : { ok: false, message: 'does not answer' }) })));
    const failed = answers.filter((x) => !x.ok);
    const text = answers.map((x) => `${x.node}: ${x.message}`).join('; ');
    return { text: failed.length === 0 ? `Maintenance ${on ? 'on' : 'off'}. ${text}` : `Maintenance ${on ? 'on' : 'off'} refused on ${failed.map((x) => x.node).join(', ')}. ${text}`, level: failed.length === 0 ? 'ok' : 'bad' };
  });
}

async function verify(ctx: ActionContext, a: AgentStatus, repair: boolean): Promise<void> {
  if (repair) {
    const go = await confirmAction({ title: `Repair ${a.peer.name}'s copy?`, body: [h('p', {}, `${a.node} compares both copies again and resends the blocks that differ to ${a.peer.name}. ${a.node}'s files are not changed.`)], ok: 'Repair' });
    if (go === undefined) return;
  }
  await act(ctx, repair ? 'Starting a verification with repair' : 'Starting a verification', async () => {
    const r = await post(nodePath(ctx.app.self, a.node, `verify${repair ? '?repair=1' : ''}`));
    return r.ok ? { text: `Verification started on ${a.node}: progress below.`, level: 'ok' } : { text: `Verification refused: ${r.message}`, level: 'bad' };
  });
}

async function resolve(ctx: ActionContext, a: AgentStatus, keep: string): Promise<void> {
  const sb = a.replication.splitBrain;
  if (sb === null) return showResult('There is no split brain to resolve (any more).', 'warn');
  const lose = keep === a.node ? a.peer.name : a.node;
  const lost = keep === a.node ? sb.passiveChanges : sb.activeChanges;
  const go = await confirmAction({
    title: `Keep ${keep}'s data?`,
    body: [h('p', {}, `${keep} keeps its data and is active afterwards. ${lose}'s ${formatCount(lost)} changes made since the two parted (sequence ${sb.commonSeq} of generation ${sb.generation.slice(0, 12)}) are overwritten by a synchronisation from ${keep}. This cannot be undone.`)],
    ok: `Keep ${keep}, overwrite ${lose}`,
  });
  if (go === undefined) return;
  await act(ctx, `Resolving the split brain: keeping ${keep}`, async () => {
    const r = await post(nodePath(ctx.app.self, a.node, `resolve?keep=${encodeURIComponent(keep)}`), 135_000);
    return r.ok ? { text: `Split brain resolved: ${r.message}.`, level: 'ok' } : { text: `Resolve refused: ${r.message}`, level: 'bad' };
  });
}

function button(label: string, onClick: () => void, disabled: boolean, id: string): HTMLButtonElement {
  return h('button', { type: 'button', id, disabled, onclick: () => onClick() }, label);
}

export function renderActions(ctx: ActionContext, nodes: readonly NodeReading[], summary: PairSummary): void {
  const a = activeOf(nodes)?.status;
  const busy = ctx.busy !== undefined;
  const anyMaintenance = answering(nodes).some((n) => n.status.maintenance);
  const noActive = a === undefined ? (summary.active === undefined ? 'No active node answers, so there is nothing to switch over, pause or verify.' : '') : '';
  const key = JSON.stringify([a?.node, a?.peer.name, a?.replication.paused, anyMaintenance, busy, answering(nodes).length, noActive]);
  fillIfChanged('actions', key, () => [
    h(
      'div',
      { class: 'action' },
      button(a === undefined ? 'Switch over…' : `Switch over to ${a.peer.name}…`, () => void switchover(ctx, a!), busy || a === undefined, 'act-switchover'),
      h('p', {}, a === undefined ? 'Moves the application to the other node.' : `Moves the application from ${a.node} to ${a.peer.name}, after ${a.peer.name} has everything (nothing is lost). You see what will happen before it does.`),
    ),
    h(
      'div',
      { class: 'action' },
      button(a?.replication.paused === true ? 'Resume replication' : 'Pause replication…', () => void pause(ctx, a!), busy || a === undefined, 'act-pause'),
      h('p', {}, a?.replication.paused === true ? `Sends ${a.peer.name} what it missed while paused.` : 'Holds replication (for example while the network is needed elsewhere); the journal keeps every change.'),
    ),
    h(
      'div',
      { class: 'action' },
      button(anyMaintenance ? 'Maintenance off' : 'Maintenance on…', () => void maintenance(ctx, nodes, !anyMaintenance), busy || answering(nodes).length === 0, 'act-maintenance'),
      h('p', {}, anyMaintenance ? 'Lets the nodes fail over, switch over and restart the application by themselves again.' : 'Holds every automatic role change on both nodes, for planned work on a server.'),
    ),
    h(
      'div',
      { class: 'action' },
      button('Verify both copies', () => void verify(ctx, a!, false), busy || a === undefined, 'act-verify'),
      h('p', {}, 'Compares both copies block by block while replication goes on; changes nothing.'),
    ),
    noActive === '' ? null : h('p', { class: 'refusal', id: 'actions-refusal' }, noActive),
  ]);
}

export function renderVerify(ctx: ActionContext, nodes: readonly NodeReading[], now: number): void {
  const a = activeOf(nodes)?.status;
  const v = a?.verify ?? null;
  if (a === undefined || v === null) {
    fillIfChanged('verify', 'none', () => []);
    return;
  }
  const total = (a.roots ?? []).reduce((n, r) => n + r.bytes, 0);
  const running = v.state !== 'done' && v.state !== 'failed';
  const took = v.finishedAt === null ? null : v.finishedAt - v.startedAt;
  const key = JSON.stringify([v.id, v.state, v.pathsDone, v.bytesDone, v.differences, v.repaired, v.waiting, ctx.busy !== undefined, running ? Math.floor(now / 5000) : 0]);
  fillIfChanged('verify', key, () => {
    const head = h('h3', {}, running ? `Verification running on ${a.node}` : `Last verification (${dateTime(v.startedAt)})`);
    const figures = `${formatCount(v.pathsDone)} paths and ${formatBytes(v.bytesDone)} compared${v.repair ? ', with repair' : ''}`;
    if (running) {
      return [
        head,
        h('div', { class: 'progress', 'data-progress': 'verify' }, h('label', { for: 'bar-verify' }, `${v.state}${v.waiting === null ? '' : `, waiting: ${v.waiting}`}`), h('progress', { id: 'bar-verify', max: Math.max(1, total), value: Math.min(v.bytesDone, Math.max(1, total)) }), h('p', { class: 'progress-text' }, `${figures} (about ${percent(v.bytesDone, total).toFixed(0)}% of ${formatBytes(total)}), ${formatCount(v.differences)} differences so far, running ${formatDuration(now - v.startedAt)}`)),
      ];
    }
    if (v.state === 'failed') return [head, h('p', { class: 'refusal', 'data-verify': 'failed' }, `Failed: ${v.error?.message ?? 'unknown error'}${v.error?.hint === undefined ? '' : `. What to do: ${v.error.hint}`}`)];
    const clean = v.differences === 0 || v.repaired >= v.differences;
    return [
      head,
      h('p', { class: clean ? 'level-ok' : 'level-bad', 'data-verify': clean ? 'clean' : 'differences' }, v.differences === 0 ? `No differences: both copies are identical. ${figures} in ${took === null ? '?' : formatDuration(took)}.` : `${formatCount(v.differences)} paths differ${v.repaired > 0 ? `, ${formatCount(v.repaired)} repaired (${formatBytes(v.bytesRepaired)} resent)` : ''}. ${figures}.`),
      v.changing > 0 ? h('p', {}, `${formatCount(v.changing)} paths kept changing while compared and were not verified.`) : null,
      clean ? null : button(`Repair ${a.peer.name}'s copy…`, () => void verify(ctx, a, true), ctx.busy !== undefined, 'act-repair'),
    ];
  });
}

export function renderSplitBrain(ctx: ActionContext, nodes: readonly NodeReading[]): void {
  const a = activeOf(nodes)?.status;
  const sb = a?.replication.splitBrain ?? null;
  if (a === undefined || sb === null) {
    fillIfChanged('split-brain', 'none', () => []);
    return;
  }
  const key = JSON.stringify([a.node, sb, ctx.busy !== undefined]);
  fillIfChanged('split-brain', key, () => [
    h('h3', {}, 'Split brain: choose whose data to keep'),
    h('p', {}, `${a.node} and ${a.peer.name} both changed data while they were apart, so replication holds and nothing is overwritten until you choose. They last agreed at sequence ${formatCount(sb.commonSeq)} of generation ${sb.generation.slice(0, 12)}.`),
    h(
      'table',
      { class: 'split' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Node'), h('th', { scope: 'col' }, 'Changes since they parted'), h('th', { scope: 'col' }, 'If you keep the other'))),
      h(
        'tbody',
        {},
        h('tr', {}, h('th', { scope: 'row' }, `${a.node} (active)`), h('td', {}, `${formatCount(sb.activeChanges)} changes`), h('td', {}, 'these are overwritten')),
        h('tr', {}, h('th', { scope: 'row' }, `${a.peer.name} (passive)`), h('td', {}, `${formatCount(sb.passiveChanges)} changes`), h('td', {}, 'these are overwritten')),
      ),
    ),
    sb.resolving === null ? null : h('p', {}, `Being resolved by the policy ${sb.resolving}.`),
    h('div', { class: 'buttons' }, button(`Keep ${a.node}'s data…`, () => void resolve(ctx, a, a.node), ctx.busy !== undefined, 'act-keep-active'), button(`Keep ${a.peer.name}'s data…`, () => void resolve(ctx, a, a.peer.name), ctx.busy !== undefined, 'act-keep-passive')),
  ]);
}
