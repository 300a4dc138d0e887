// `tandem events` prints one line per event; text that came from a peer or a path (alarm
// messages) cannot move the cursor or recolour the operator's terminal.
import { describe, expect, it } from 'vitest';
import { formatEvent } from '../../../console/commands/events.ts';

describe('formatEvent', () => {
  it('prints one line: time, seq, node, what, from → to, trigger, reason (phase)', () => {
    const line = formatEvent({ seq: 26, time: Date.UTC(2026, 11, 4, 16, 44, 28, 820), node: 'beta', kind: 'switchover', from: 'alpha', to: 'beta', reason: 'planned switchover', trigger: 'planned', details: { phase: 'done' } });
    expect(line).toBe('2026-12-04T16:44:28.820Z  #26  beta  switchover  alpha → beta  [planned]  planned switchover (done)\n');
  });

  it('shows control characters in a reason as escapes', () => {
    const line = formatEvent({ seq: 1, time: 0, node: 'alpha', kind: 'alarm', from: 'clear', to: 'raised', reason: 'apply failed: \u001b[2J\u001b[31mdata/x\ny', trigger: 'automatic', details: { code: 'TANDEM_ERR_APPLY_FAILED' } });
    expect(line).toBe('1970-01-01T00:00:00.000Z  #1  alpha  alarm TANDEM_ERR_APPLY_FAILED  clear → raised  [automatic]  apply failed: \\x1b[2J\\x1b[31mdata/x\\x0ay\n');
    expect(line.split('\n')).toHaveLength(2);
  });
});
