// The console in the browser: log in, then read both nodes (this node's API, the peer's through
// it) once a second, this node's events as they happen (server-sent events) and the peer's every
// few seconds, and draw the pair. Reads nothing but the API that served the page; changes
// nothing but through the same API's actions, each confirmed and each answered in words.
import type { AgentStatus } from '../../agent/control/status.ts';
import { EVENT_KINDS, type TandemEvent } from '../../agent/events/event.ts';
import { call, nodePath, SESSION_ENDED } from './api.ts';
import { renderActions, renderSplitBrain, renderVerify, type ActionContext } from './actions.ts';
import { byId, fill, h } from './dom.ts';
import { mergeEvents } from './event-filter.ts';
import { faviconHref, pageTitle } from './favicon.ts';
import { samplesFromHistory, sampleOf, Series } from './figures.ts';
import { summarise, type NodeReading } from './pair-model.ts';
import { renderCharts, renderEvents, renderLinks, renderNodes, renderProgress, renderReplication, renderRoots } from './views.ts';
import { timeOfDay } from './format.ts';

const TICK_MS = 1000;
const PEER_EVENTS_EVERY = 3;
const EVENTS_ON_OPEN = 500;

interface SessionAnswer {
  loggedIn: boolean;
  node: string;
  peer?: { name: string; console: string };
}

interface EventsAnswer {
  history: string;
  lastSeq: number;
  events: TandemEvent[];
}

class Console {
  self = '';
  peer = '';
  peerConsole: string | undefined;
  readings = new Map<string, NodeReading>();
  series = new Map<string, Series>();
  events: TandemEvent[] = [];
  eventsDirty = true;
  cursors = new Map<string, { history: string; lastSeq: number }>();
  windowMs = 300_000;
  private timer: number | undefined;
  private ticks = 0;
  private reading = false;
  private stream: EventSource | undefined;
  private running = false;
  readonly action: ActionContext;

  constructor() {
    this.action = {
      app: this,
      busy: undefined,
      refresh: () => void this.tick(),
    };
  }

  nodes(): [NodeReading, NodeReading] {
    const names = [this.self, this.peer].sort();
    return names.map((n) => this.readings.get(n) ?? { name: n, at: Date.now(), ok: false as const, error: { code: 'TANDEM_ERR_CONTROL_UNREACHABLE', message: 'not read yet' } }) as [NodeReading, NodeReading];
  }

  seriesOf(node: string): Series {
    let s = this.series.get(node);
    if (s === undefined) this.series.set(node, (s = new Series()));
    return s;
  }

  async start(session: SessionAnswer): Promise<void> {
    this.running = true;
    this.self = session.node;
    this.peer = session.peer?.name ?? '';
    this.peerConsole = session.peer?.console;
    byId('login-view').hidden = true;
    byId('dashboard').hidden = false;
    byId('logout').hidden = false;
    await this.tick();
    if (!this.running) return;
    await Promise.all([this.loadHistory(this.self), this.peer === '' ? undefined : this.loadHistory(this.peer), this.loadEvents(this.self), this.peer === '' ? undefined : this.loadEvents(this.peer)]);
    this.openStream();
    this.fillFilters();
    this.render();
    this.timer = window.setInterval(() => void this.tick(), TICK_MS);
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
    this.stream?.close();
    this.stream = undefined;
  }

  sessionEnded(): void {
    this.stop();
    showLogin('Your session ended (the agent restarted, or the control token was rotated): log in again.');
  }

  private async loadHistory(node: string): Promise<void> {
    const r = await call<{ fields: unknown; rows: unknown }>('GET', nodePath(this.self, node, 'history'));
    if (r.ok) this.seriesOf(node).add(...samplesFromHistory(r.body));
  }

  private async loadEvents(node: string): Promise<void> {
    const base = nodePath(this.self, node, 'events');
    const head = await call<EventsAnswer>('GET', `${base}?since=0&limit=1`);
    if (!head.ok) return;
    const since = Math.max(0, head.body.lastSeq - EVENTS_ON_OPEN);
    const r = await call<EventsAnswer>('GET', `${base}?since=${since}&limit=1000`);
    if (!r.ok) return;
    this.takeEvents(node, r.body);
  }

  private takeEvents(node: string, a: EventsAnswer): void {
    if (!Array.isArray(a.events)) return;
    const known = this.cursors.get(node);
    if (known !== undefined && known.history !== a.history && known.history !== '') {
      // The node's history file was lost and its numbering started over: read it again from its start.
      this.events = this.events.filter((e) => e.node !== node);
      this.cursors.delete(node);
      this.eventsDirty = true;
      void this.loadEvents(node);
      return;
    }
    this.events = mergeEvents(this.events, a.events.filter((e) => e.node === node));
    this.cursors.set(node, { history: a.history, lastSeq: Math.max(a.lastSeq, ...a.events.map((e) => e.seq)) });
    this.eventsDirty = true;
  }

  /** This node's events as they happen. The browser's own retry would resend from `since`: reopen instead. */
  private openStream(): void {
    if (!this.running) return;
    const since = this.cursors.get(this.self)?.lastSeq ?? 0;
    const es = new EventSource(`/v1/events?since=${since}`);
    this.stream = es;
    es.addEventListener('tandem', (m) => {
      try {
        const e = JSON.parse((m as MessageEvent<string>).data) as TandemEvent;
        const c = this.cursors.get(this.self);
        this.takeEvents(this.self, { history: c?.history ?? '', lastSeq: Math.max(c?.lastSeq ?? 0, e.seq), events: [e] });
        this.renderEventsSoon();
      } catch {
        // Not an event: ignored.
      }
    });
    es.addEventListener('error', () => {
      es.close();
      if (this.stream === es) this.stream = undefined;
      window.setTimeout(() => this.openStream(), 2000);
    });
  }

  private renderEventsSoon(): void {
    window.requestAnimationFrame(() => this.render());
  }

  private async pollPeerEvents(): Promise<void> {
    if (this.peer === '') return;
    const c = this.cursors.get(this.peer);
    if (c === undefined) return this.loadEvents(this.peer);
    const r = await call<EventsAnswer>('GET', `/v1/peer/events?since=${c.lastSeq}&limit=200`);
    if (r.ok) this.takeEvents(this.peer, r.body);
  }

  async tick(): Promise<void> {
    if (this.reading || !this.running) return;
    this.reading = true;
    try {
      const [a, b] = await Promise.all([
        call<AgentStatus>('GET', '/v1/status', { timeoutMs: 4000 }),
        this.peer === '' ? undefined : call<AgentStatus>('GET', '/v1/peer/status', { timeoutMs: 7000 }),
      ]);
      // Stopped meanwhile (logged out, or the session ended): these answers are for no one. A
      // poll in flight when the operator logged out came back 401 and said the session ended.
      if (!this.running) return;
      if (a.status === SESSION_ENDED || b?.status === SESSION_ENDED) return this.sessionEnded();
      const now = Date.now();
      this.take(this.self, a, now);
      if (this.peer === '' && a.ok) this.peer = a.body.peer.name;
      if (b !== undefined) this.take(this.peer, b, now);
      this.ticks += 1;
      if (this.ticks % PEER_EVENTS_EVERY === 0) await this.pollPeerEvents();
      this.render();
    } finally {
      this.reading = false;
    }
  }

  private take(node: string, r: Awaited<ReturnType<typeof call<AgentStatus>>>, now: number): void {
    const before = this.readings.get(node);
    if (r.ok && typeof r.body === 'object' && r.body !== null && r.body.node === node) {
      this.readings.set(node, { name: node, at: now, ok: true, status: r.body });
      this.seriesOf(node).add(sampleOf(r.body, now));
    } else {
      const last = before === undefined ? undefined : before.ok ? before.status : before.last;
      const error = r.ok ? { code: 'TANDEM_ERR_CONTROL_REFUSED', message: `the answer is not ${node}'s status` } : r.error;
      this.readings.set(node, { name: node, at: before?.ok === true ? before.at : (before?.at ?? now), ok: false, error, last });
    }
  }

  private fillFilters(): void {
    const nodeSel = byId<HTMLSelectElement>('filter-node');
    if (nodeSel.options.length <= 1) for (const n of [this.self, this.peer].filter((x) => x !== '').sort()) nodeSel.append(h('option', { value: n }, n));
    const kindSel = byId<HTMLSelectElement>('filter-kind');
    if (kindSel.options.length <= 1) for (const k of EVENT_KINDS) kindSel.append(h('option', { value: k }, k));
  }

  render(): void {
    const now = Date.now();
    const nodes = this.nodes();
    const summary = summarise(nodes, now);
    document.title = pageTitle(summary.health, summary.short, summary.pair);
    byId<HTMLLinkElement>('favicon').href = faviconHref(summary.health);
    document.documentElement.dataset.health = summary.health;
    fill('pair-name', summary.pair === '' ? 'console' : `pair ${summary.pair}`);
    const where = byId('where');
    where.hidden = false;
    where.replaceChildren(`Console of ${this.self}`, this.peerConsole === undefined ? '' : ' · ', this.peerConsole === undefined ? '' : h('a', { href: this.peerConsole }, `${this.peer}'s console`));
    fill('headline', h('span', { class: `badge ${summary.health}` }, summary.health === 'ok' ? 'ALL WELL' : summary.health === 'warn' ? 'ATTENTION' : 'ACTION NEEDED'), ' ', summary.headline);
    fill('notes', ...summary.notes.map((n) => h('li', {}, n)));
    renderNodes(nodes, this.self, this.events, now);
    renderActions(this.action, nodes, summary);
    renderReplication(nodes, this.series, now);
    renderProgress(nodes, this.series);
    renderVerify(this.action, nodes, now);
    renderSplitBrain(this.action, nodes);
    renderCharts(nodes.map((n) => n.name), this.series, now - this.windowMs, now);
    renderLinks(nodes, now);
    renderRoots(nodes);
    if (this.eventsDirty) {
      renderEvents(this.events, readFilter());
      this.eventsDirty = false;
    }
    const selfReading = this.readings.get(this.self);
    const live = byId('live');
    live.textContent = selfReading?.ok === true ? `live · updated ${timeOfDay(selfReading.at)}` : `${this.self}'s agent does not answer: this page shows what it last saw${this.peerConsole === undefined ? '' : `; open ${this.peer}'s console`}`;
    live.className = selfReading?.ok === true ? '' : 'stale';
  }
}

function readFilter() {
  return {
    node: byId<HTMLSelectElement>('filter-node').value,
    kind: byId<HTMLSelectElement>('filter-kind').value,
    trigger: byId<HTMLSelectElement>('filter-trigger').value,
    text: byId<HTMLInputElement>('filter-text').value,
  };
}

let app: Console | undefined;

function showLogin(message?: string): void {
  byId('dashboard').hidden = true;
  byId('logout').hidden = true;
  byId('where').hidden = true;
  byId('login-view').hidden = false;
  const m = byId('login-message');
  m.hidden = message === undefined;
  m.textContent = message ?? '';
  document.title = 'Log in — Tandem';
  byId<HTMLInputElement>('token').focus();
}

async function boot(): Promise<void> {
  const params = new URLSearchParams(window.location.search);
  const refused = params.get('login') === 'refused';
  if (window.location.search !== '') window.history.replaceState(null, '', window.location.pathname);
  byId('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void login();
  });
  byId('logout').addEventListener('click', () => {
    // Stopped first: no poll of this session starts after the click.
    app?.stop();
    app = undefined;
    void call('DELETE', '/v1/session').then(() => showLogin('Logged out.'));
  });
  byId('event-filter').addEventListener('input', () => {
    if (app !== undefined) {
      app.eventsDirty = true;
      app.render();
    }
  });
  byId('event-filter').addEventListener('submit', (ev) => ev.preventDefault());
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name="window"]')) {
    r.addEventListener('change', () => {
      if (app === undefined) return;
      app.windowMs = Number(r.value);
      app.render();
    });
  }
  const s = await call<SessionAnswer>('GET', '/v1/session');
  if (!s.ok) {
    showLogin(`This console's agent does not answer: ${s.error.message}`);
    return;
  }
  if (!s.body.loggedIn) {
    showLogin(refused ? 'That login link was used already, or is older than 10 minutes: log in with the control token, or make a new link with tandem console -c CONFIG.' : undefined);
    return;
  }
  await startApp(s.body);
}

async function startApp(session: SessionAnswer): Promise<void> {
  app?.stop();
  app = new Console();
  await app.start(session);
}

async function login(): Promise<void> {
  const input = byId<HTMLInputElement>('token');
  const token = input.value.trim();
  const r = await call<{ ok: boolean }>('POST', '/v1/session', { headers: { 'x-tandem-token': token } });
  if (!r.ok) {
    showLogin(r.status === 403 || r.status === 401 ? 'Refused: that is not the control token of this pair. Print it with: tandem token show -c CONFIG' : `Cannot log in: ${r.error.message}`);
    input.select();
    return;
  }
  input.value = '';
  const s = await call<SessionAnswer>('GET', '/v1/session');
  if (s.ok && s.body.loggedIn) await startApp(s.body);
  else showLogin('Logged in, but the session did not hold: does this browser accept cookies from this address?');
}

void boot();
