// Reading the scripts log and finding every moment two nodes served at once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { overlappingStarts, parseScriptsLog, readScriptsLog } from '../../../agent/scripts/index.ts';

const log = (lines: string[]) => parseScriptsLog(`${lines.join('\n')}\n`);

describe('the scripts log', () => {
  it('parses four fields and a reason that may hold spaces, and skips torn lines', () => {
    expect(log(['2026-01-01T00:00:00.000Z alpha start begin failover: the peer is gone', '2026-01-01T00:00:01.000Z alpha start ok', 'torn', ''])).toEqual([
      { at: '2026-01-01T00:00:00.000Z', node: 'alpha', script: 'start', event: 'begin', reason: 'failover: the peer is gone' },
      { at: '2026-01-01T00:00:01.000Z', node: 'alpha', script: 'start', event: 'ok' },
    ]);
  });

  it('reads a missing file as no runs at all', () => {
    expect(readScriptsLog(path.join(os.tmpdir(), 'tandem-no-such-scripts.log'))).toEqual([]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-scripts-log-'));
    try {
      fs.writeFileSync(path.join(dir, 'scripts.log'), 't1 beta stop ok manual\n');
      expect(readScriptsLog(path.join(dir, 'scripts.log'))).toEqual([{ at: 't1', node: 'beta', script: 'stop', event: 'ok', reason: 'manual' }]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finds nothing when each start follows the other node\'s stop', () => {
    expect(overlappingStarts(log([
      't1 alpha start begin r', 't2 alpha start ok r',
      't3 beta start fence r', 't4 alpha stop begin fenced', 't5 alpha stop ok fenced',
      't6 beta start begin r', 't7 beta start ok r',
      't8 beta start already-running r',
    ]))).toEqual([]);
  });

  it('reports a start while the other node still serves, counted from its begin', () => {
    const problems = overlappingStarts(log(['t1 alpha start begin a', 't2 alpha start ok a', 't3 alpha stop begin b', 't4 beta start begin failover', 't5 beta start ok failover']));
    expect(problems).toEqual(['t4: beta started (start begin, failover) while alpha served since t1 without a stop']);
  });

  it('treats a failed start as not serving, and one cut short (no end line) as serving', () => {
    expect(overlappingStarts(log(['t1 alpha start begin', 't2 alpha start failed', 't3 beta start begin', 't4 beta start ok']))).toEqual([]);
    expect(overlappingStarts(log(['t1 alpha start begin', 't3 beta start begin']))).toHaveLength(1);
  });
});
