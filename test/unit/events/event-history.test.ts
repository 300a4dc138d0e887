// The event history: seq numbers that go on across restarts, a bound in memory and on disk, a
// file only root reads, and a torn last line (a crash mid-write) that costs that line only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventHistory } from '../../../agent/events/index.ts';
import type { TandemEvent } from '../../../agent/events/index.ts';
import { FakeClock } from '../../../shared/clock.ts';
import { silentLogger } from '../../../shared/log.ts';

let dir = '';
afterEach(() => {
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

function open(keep = 10, clock = new FakeClock()): { h: EventHistory; file: string; clock: FakeClock } {
  dir ||= fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-events-'));
  const file = path.join(dir, 'events.ndjson');
  return { h: EventHistory.open({ file, keep, clock, log: silentLogger() }), file, clock };
}

function ev(n: number, clock: FakeClock): Omit<TandemEvent, 'seq'> {
  return { time: clock.now(), node: 'alpha', kind: 'state', from: 'syncing', to: `in-sync ${n}`, reason: `change ${n}`, trigger: 'automatic', details: {} };
}

describe('EventHistory', () => {
  it('numbers events from 1 and answers those after a seq, oldest first', () => {
    const { h, clock } = open();
    expect(h.lastSeq).toBe(0);
    for (let i = 1; i <= 3; i++) h.append(ev(i, clock));
    expect(h.since(0).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(h.since(2).map((e) => e.to)).toEqual(['in-sync 3']);
    expect(h.since(3)).toEqual([]);
    expect(h.since(0, 2).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('survives a restart: same history id, same events, seq goes on; the file is 0600', () => {
    const first = open();
    for (let i = 1; i <= 4; i++) first.h.append(ev(i, first.clock));
    const id = first.h.id;
    first.h.close();
    expect(fs.statSync(first.file).mode & 0o777).toBe(0o600);
    const again = open();
    expect(again.h.id).toBe(id);
    expect(again.h.since(0).map((e) => e.reason)).toEqual(['change 1', 'change 2', 'change 3', 'change 4']);
    expect(again.h.append(ev(5, again.clock)).seq).toBe(5);
  });

  it('keeps `keep` events in memory and at most twice that on disk, and reads the kept ones back', () => {
    const { h, file, clock } = open(10);
    for (let i = 1; i <= 95; i++) h.append(ev(i, clock));
    expect(h.firstSeq).toBe(86);
    expect(h.since(0).map((e) => e.seq)).toEqual([86, 87, 88, 89, 90, 91, 92, 93, 94, 95]);
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    // The header line plus at most 2 × keep events.
    expect(lines.length).toBeLessThanOrEqual(21);
    h.close();
    const again = open(10);
    expect(again.h.since(0).map((e) => e.seq)).toEqual([86, 87, 88, 89, 90, 91, 92, 93, 94, 95]);
    expect(again.h.append(ev(96, again.clock)).seq).toBe(96);
  });

  it('skips a line torn by a crash and anything that is not its own event, and goes on', () => {
    const first = open();
    for (let i = 1; i <= 3; i++) first.h.append(ev(i, first.clock));
    first.h.close();
    fs.appendFileSync(first.file, '{"seq":4,"time":1,"node":"alpha","kind":"sta');
    const again = open();
    expect(again.h.since(0).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(again.h.append(ev(4, again.clock)).seq).toBe(4);
    again.h.close();
    // Rewritten without the torn line: read back whole.
    expect(open().h.since(0).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
  });

  it('starts a new history (another id) when the file is not one, and says so', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-events-'));
    fs.writeFileSync(path.join(dir, 'events.ndjson'), 'not json at all\n');
    const { h } = open();
    expect(h.id).toMatch(/^[0-9a-f]{16}$/);
    expect(h.lastSeq).toBe(0);
  });

  it('wakes a long poll at the first event after its seq, or lets it go at its timeout', async () => {
    const { h, clock } = open();
    h.append(ev(1, clock));
    let woke = false;
    const waiting = h.wait(1, 30_000).then(() => (woke = true));
    clock.advance(10_000);
    await Promise.resolve();
    expect(woke).toBe(false);
    h.append(ev(2, clock));
    await waiting;
    expect(woke).toBe(true);
    let timedOut = false;
    const w2 = h.wait(2, 5_000).then(() => (timedOut = true));
    clock.advance(5_000);
    await w2;
    expect(timedOut).toBe(true);
    expect(clock.pendingTimers()).toBe(0);
  });
});
