// Alert hooks: an alert reaches a webhook and a command with its reason; a failing receiver is
// retried and then given up; a hanging one is cut at the timeout; and offering an alert never
// waits for any of it. Real HTTP servers and real processes, short timeouts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertHooks, ALERT_QUEUE_MAX, DEFAULT_ALERT_KINDS, worthAlerting, type TandemEvent } from '../../../agent/events/index.ts';
import { FakeClock, systemClock } from '../../../shared/clock.ts';
import { silentLogger } from '../../../shared/log.ts';
import { webhookReceiver, type WebhookReceiver } from '../../helpers/webhook-receiver.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function event(p: Partial<TandemEvent> = {}): TandemEvent {
  return { seq: 7, time: 1_700_000_000_000, node: 'beta', kind: 'failover', from: 'alpha', to: 'beta', reason: 'failover: channel down and the active\'s agent refuses connections (gone) for 1.0 s', trigger: 'automatic', details: { phase: 'started' }, ...p };
}

async function receiver(answer: number | 'hang' = 200): Promise<WebhookReceiver> {
  const r = await webhookReceiver(answer);
  cleanups.push(() => r.close());
  return r;
}

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function hooks(o: Partial<ConstructorParameters<typeof AlertHooks>[0]>): AlertHooks {
  // A timeout a loaded machine never hits by accident; the hang tests choose short ones.
  const h = new AlertHooks({ kinds: DEFAULT_ALERT_KINDS, timeoutMs: 5000, retries: 2, pair: 'demo', clock: systemClock, log: silentLogger(), ...o });
  cleanups.push(() => h.stop());
  return h;
}

describe('AlertHooks', () => {
  it('posts a failover alert to the webhook with its reason, trigger and pair', async () => {
    const r = await receiver(204);
    const h = hooks({ webhook: r.url });
    h.offer(event());
    await until('the delivery', () => h.stats.delivered === 1);
    expect(r.bodies).toEqual([{ tandem: 1, pair: 'demo', event: event() }]);
  });

  it('retries a webhook that answers 500, then gives the alert up, and goes on with the next', async () => {
    const r = await receiver(500);
    const h = hooks({ webhook: r.url, retries: 2 });
    h.offer(event());
    await until('the alert given up', () => h.stats.failed === 1, 10_000);
    expect(r.hits()).toBe(3);
    expect(h.stats.delivered).toBe(0);
  });

  it('never waits in offer(), even for a webhook that hangs; each attempt is cut at the timeout', async () => {
    const r = await receiver('hang');
    const h = hooks({ webhook: r.url, retries: 0, timeoutMs: 200 });
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) h.offer(event({ seq: i + 1 }));
    expect(performance.now() - t0).toBeLessThan(50);
    await until('the first attempt cut', () => h.stats.failed >= 1, 5000);
    expect(r.hits()).toBeGreaterThanOrEqual(1);
  });

  it('keeps at most ALERT_QUEUE_MAX alerts waiting per target: beyond, the oldest is dropped and counted', () => {
    // A receiver that is never reached in this test: the fake clock never fires the timeout.
    const h = hooks({ webhook: 'http://127.0.0.1:9/never', clock: new FakeClock() });
    for (let i = 0; i < ALERT_QUEUE_MAX + 11; i++) h.offer(event({ seq: i + 1 }));
    // One is in flight, ALERT_QUEUE_MAX wait, the rest were dropped.
    expect(h.stats.dropped).toBe(10);
  });

  it('runs the command with the event on stdin and in TANDEM_EVENT_* variables', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-alert-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const out = path.join(dir, 'out');
    const cmd = path.join(dir, 'alert.sh');
    fs.writeFileSync(cmd, `#!/bin/sh\n{ echo "$TANDEM_EVENT_KIND|$TANDEM_EVENT_FROM|$TANDEM_EVENT_TO|$TANDEM_EVENT_TRIGGER|$TANDEM_EVENT_SEQ|$TANDEM_NODE|$TANDEM_PAIR"; cat; } > ${out}\n`, { mode: 0o755 });
    const h = hooks({ command: cmd });
    h.offer(event());
    await until('the command', () => h.stats.delivered === 1);
    const [line, json] = fs.readFileSync(out, 'utf8').split('\n');
    expect(line).toBe('failover|alpha|beta|automatic|7|beta|demo');
    expect(JSON.parse(json!)).toEqual({ tandem: 1, pair: 'demo', event: event() });
  });

  it('kills a command that outlives the timeout, and counts a failing one as failed', async () => {
    const h = hooks({ command: '/bin/false', retries: 0 });
    h.offer(event());
    await until('the failure', () => h.stats.failed === 1);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-alert-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const cmd = path.join(dir, 'slow.sh');
    fs.writeFileSync(cmd, '#!/bin/sh\nsleep 30\n', { mode: 0o755 });
    const slow = hooks({ command: cmd, retries: 0, timeoutMs: 200 });
    const t0 = performance.now();
    slow.offer(event());
    await until('the kill', () => slow.stats.failed === 1);
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it('holds a link-down alert and drops it when the link is back in time (a switchover\'s reconnect)', async () => {
    const r = await receiver(200);
    const clock = new FakeClock();
    const h = hooks({ webhook: r.url, holdLinkDownMs: 5000, clock });
    const down = event({ kind: 'link', from: 'up', to: 'down', details: { link: 'channel' } });
    const up = event({ kind: 'link', from: 'down', to: 'up', details: { link: 'channel' } });
    h.offer(down);
    clock.advance(300);
    h.offer(up);
    clock.advance(10_000);
    h.offer({ ...down, seq: 9 });
    clock.advance(5_000);
    await until('the held alert', () => h.stats.delivered === 1);
    h.offer({ ...up, seq: 10 });
    await until('its recovery', () => h.stats.delivered === 2);
    expect(r.bodies.map((b) => `${b.event.seq} ${b.event.to}`)).toEqual(['9 down', '10 up']);
  });

  it('holds a lag beyond its bound the same way: a restarted active briefly behind alerts nobody', async () => {
    const r = await receiver(200);
    const clock = new FakeClock();
    const h = hooks({ webhook: r.url, holdLinkDownMs: 5000, clock });
    h.offer(event({ kind: 'lag', from: 'within', to: 'beyond', details: { lagMs: 12_000, boundMs: 10_000 } }));
    clock.advance(1000);
    h.offer(event({ kind: 'lag', from: 'beyond', to: 'within', details: { lagMs: 0, boundMs: 10_000 } }));
    clock.advance(10_000);
    await new Promise((res) => setTimeout(res, 200));
    expect(r.hits()).toBe(0);
  });

  it('alerts what matters of the chatty kinds only', () => {
    const k = DEFAULT_ALERT_KINDS;
    expect(worthAlerting(event({ kind: 'switchover', details: { phase: 'started' } }), k)).toBe(false);
    expect(worthAlerting(event({ kind: 'switchover', details: { phase: 'failed' } }), k)).toBe(true);
    expect(worthAlerting(event({ kind: 'link', from: 'unknown', to: 'up', details: { link: 'public' } }), k)).toBe(false);
    expect(worthAlerting(event({ kind: 'alarm', to: 'raised', details: { code: 'TANDEM_ERR_APPLY_FAILED', source: 'peer' } }), k)).toBe(false);
    expect(worthAlerting(event({ kind: 'alarm', to: 'raised', details: { code: 'TANDEM_ERR_APPLY_FAILED', source: 'apply' } }), k)).toBe(true);
    expect(worthAlerting(event({ kind: 'state' }), k)).toBe(false);
    expect(worthAlerting(event({ kind: 'state' }), ['state'])).toBe(true);
  });
});
