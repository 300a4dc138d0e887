// /metrics of two real agents: promtool accepts it, every metric docs/metrics.md lists is there,
// and the ones that should move do: replication counters with writes, switchover and role
// counters, script runs, heartbeat round trips.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { documentedMetrics, parseMetrics, promtool } from '../../helpers/metrics.ts';
import { killAll } from '../../helpers/processes.ts';
import { tandem } from '../../helpers/cli.ts';
import { TestPair, type NodeName } from '../../helpers/pair.ts';

let pair: TestPair | undefined;
afterEach(async () => {
  await killAll();
  await pair?.cleanup();
  pair = undefined;
});

async function scrape(p: TestPair, n: NodeName): Promise<Map<string, number>> {
  const res = await fetch(`${p.node(n).controlUrl}/metrics`);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  const lint = promtool(text);
  expect(lint.output, `promtool on ${n}`).toBe('');
  expect(lint.status).toBe(0);
  const { families, samples } = parseMetrics(text);
  expect([...families.keys()].sort()).toEqual(documentedMetrics().sort());
  return samples;
}

describe('/metrics of a running pair', () => {
  it('passes promtool, lists every documented metric, and moves with writes and a switchover', async () => {
    const p = await TestPair.create({ config: (doc) => (doc.heartbeat = { interval: '250ms', threshold: 4 }) });
    pair = p;
    await p.startBoth();
    await p.waitFor('alpha', 'serving, in sync', (s) => s.failover.serving && s.state === 'in-sync');
    await p.waitFor('beta', 'round trip measured', (s) => s.links.heartbeat.rttMs !== null);
    const a0 = await scrape(p, 'alpha');
    const b0 = await scrape(p, 'beta');
    expect(a0.get('tandem_role{role="active"}')).toBe(1);
    expect(b0.get('tandem_role{role="passive"}')).toBe(1);
    expect(a0.get('tandem_serving')).toBe(1);
    expect(b0.get('tandem_state{state="in-sync"}')).toBe(1);
    expect(b0.get('tandem_heartbeat_rtt_seconds')).toBeGreaterThanOrEqual(0);
    expect(b0.get('tandem_heartbeat_rtt_seconds')).toBeLessThan(1);
    expect(a0.get('tandem_script_runs_total{script="start",result="ok"}')).toBe(1);
    expect(a0.get('tandem_link_up{link="channel"}')).toBe(1);

    for (let i = 0; i < 20; i++) fs.writeFileSync(p.data('alpha', `m-${i}.txt`), `metric ${i}\n`.repeat(100));
    await p.waitIdentical();
    await p.waitFor('alpha', 'acknowledged', (s) => s.replication.appliedSeq === s.replication.headSeq && s.replication.headSeq > 0);
    const a1 = await scrape(p, 'alpha');
    const b1 = await scrape(p, 'beta');
    for (const [name, m0, m1] of [
      ['tandem_replication_records_total', a0, a1],
      ['tandem_replication_records_total', b0, b1],
      ['tandem_replication_head_sequence', a0, a1],
      ['tandem_channel_bytes_total{direction="out"}', a0, a1],
      ['tandem_channel_bytes_total{direction="in"}', b0, b1],
      ['tandem_fsyncs_total', a0, a1],
      ['tandem_fsyncs_total', b0, b1],
    ] as const) {
      expect(m1.get(name), name).toBeGreaterThan(m0.get(name)!);
    }
    expect(b1.get('tandem_replication_records_total')! - b0.get('tandem_replication_records_total')!).toBeGreaterThanOrEqual(20);

    const run = await tandem(['switchover', '-c', p.node('alpha').config], 120_000);
    expect(run.code, run.stderr).toBe(0);
    await p.waitFor('alpha', 'in sync as passive', (s) => s.role === 'passive' && s.state === 'in-sync');
    const a2 = await scrape(p, 'alpha');
    const b2 = await scrape(p, 'beta');
    expect(a2.get('tandem_role{role="passive"}')).toBe(1);
    expect(b2.get('tandem_role{role="active"}')).toBe(1);
    expect(a2.get('tandem_switchovers_total{phase="done"}')).toBe(1);
    expect(b2.get('tandem_switchovers_total{phase="done"}')).toBe(1);
    expect(a2.get('tandem_role_changes_total{trigger="operator"}')).toBe(1);
    expect(b2.get('tandem_role_changes_total{trigger="planned"}')).toBe(1);
    expect(a2.get('tandem_script_runs_total{script="stop",result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(b2.get('tandem_script_runs_total{script="start",result="ok"}')).toBe(1);
    expect(b2.get('tandem_epoch')).toBe(a0.get('tandem_epoch')! + 1);
    expect(a2.get('tandem_events_total{kind="switchover"}')).toBe(2);
    expect(a2.get('tandem_failovers_total{phase="started"}')).toBe(0);
  }, 150_000);
});
