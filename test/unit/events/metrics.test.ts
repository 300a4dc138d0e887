// /metrics: the text format parses, promtool's linter passes, and every metric docs/metrics.md
// lists is there (and nothing undocumented is).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderTandemMetrics, type MetricsInputs } from '../../../agent/events/index.ts';
import { documentedMetrics, parseMetrics, promtool } from '../../helpers/metrics.ts';
import { PROJECT } from '../../helpers/pair.ts';
import { statusDoc } from './status-fixture.ts';

function inputs(p: Partial<MetricsInputs> = {}): MetricsInputs {
  return {
    status: statusDoc(),
    events: new Map([['state', 3]]),
    roleChanges: new Map(),
    actions: new Map([['switchover done', 1]]),
    recordsReplicated: 42,
    scripts: new Map([['start', { ok: 2, failed: 1, durationMsSum: 1500 }]]),
    alerts: { delivered: 1, failed: 0, dropped: 0 },
    controlRefusals: new Map([['host', 2]]),
    fsyncs: 17,
    ...p,
  };
}

describe('metrics', () => {
  it('parse as Prometheus text, pass promtool check metrics, and match docs/metrics.md exactly', () => {
    const text = renderTandemMetrics(inputs());
    const { families, samples } = parseMetrics(text);
    const documented = documentedMetrics();
    expect(documented.length).toBeGreaterThan(30);
    expect([...families.keys()].sort()).toEqual([...documented].sort());
    const lint = promtool(text);
    expect(lint.output).toBe('');
    expect(lint.status).toBe(0);
    expect(samples.get('tandem_role{role="active"}')).toBe(1);
    expect(samples.get('tandem_state{state="in-sync"}')).toBe(1);
    expect(samples.get('tandem_state{state="syncing"}')).toBe(0);
    expect(samples.get('tandem_replication_records_total')).toBe(42);
    expect(samples.get('tandem_switchovers_total{phase="done"}')).toBe(1);
    expect(samples.get('tandem_script_runs_total{script="start",result="failed"}')).toBe(1);
    expect(samples.get('tandem_script_duration_seconds_sum{script="start"}')).toBe(1.5);
    expect(samples.get('tandem_control_refusals_total{reason="host"}')).toBe(2);
    expect(samples.get('tandem_fsyncs_total')).toBe(17);
    expect(samples.get('tandem_heartbeat_rtt_seconds')).toBeCloseTo(0.0004);
    expect(samples.get('tandem_channel_delay_seconds')).toBe(2.5);
    // Counters that never moved are there, at 0.
    expect(samples.get('tandem_failovers_total{phase="started"}')).toBe(0);
    expect(samples.get('tandem_events_total{kind="failover"}')).toBe(0);
  });

  it('say unknown as NaN, not as a guess, and escape label values', () => {
    const s = statusDoc({ links: { public: 'unknown', heartbeat: { lastHeardMsAgo: null, longestGapMs: 0, rttMs: null, delayMs: null } }, alarms: [{ code: 'TANDEM_ERR_APPLY_FAILED', message: 'x', source: 'ap"ply\\' }], generation: 'g"1' });
    const text = renderTandemMetrics(inputs({ status: s }));
    const { samples } = parseMetrics(text);
    expect(samples.get('tandem_link_up{link="public"}')).toBeNaN();
    expect(samples.get('tandem_heartbeat_last_seconds')).toBeNaN();
    expect(samples.get('tandem_channel_delay_seconds')).toBeNaN();
    expect(samples.get('tandem_verify_differences')).toBeNaN();
    expect(text).toContain('tandem_alarm{code="TANDEM_ERR_APPLY_FAILED",source="ap\\"ply\\\\"} 1');
    expect(promtool(text).status).toBe(0);
  });

  it('come with example alert rules that promtool accepts, written against documented metrics only', () => {
    const file = path.join(PROJECT, 'docs/tandem-alerts.yml');
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS');
    expect(r.status).toBe(0);
    const used = new Set([...fs.readFileSync(file, 'utf8').matchAll(/\b(tandem_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(sum|count)$/, '')));
    const documented = new Set(documentedMetrics());
    expect([...used].filter((m) => !documented.has(m))).toEqual([]);
  });
});
