// Bench (o)'s channel setting (TANDEM_BENCH_CATCHUP_CHANNEL): a value it does not know is refused
// by name, never taken for either setup; proxy is always honoured.
import { afterEach, describe, expect, it } from 'vitest';
import { catchUpChannel } from '../../../bench/catch-up-isolated.ts';

const before = process.env.TANDEM_BENCH_CATCHUP_CHANNEL;

afterEach(() => {
  if (before === undefined) delete process.env.TANDEM_BENCH_CATCHUP_CHANNEL;
  else process.env.TANDEM_BENCH_CATCHUP_CHANNEL = before;
});

describe('TANDEM_BENCH_CATCHUP_CHANNEL', () => {
  it.each(['bogus', 'DIRECT', '', 'direct; rm -rf /'])('refuses %j naming the variable', (v) => {
    process.env.TANDEM_BENCH_CATCHUP_CHANNEL = v;
    expect(() => catchUpChannel()).toThrow(/TANDEM_BENCH_CATCHUP_CHANNEL: direct or proxy/);
  });

  it('takes proxy as asked, and otherwise direct only where a namespace can be made', () => {
    process.env.TANDEM_BENCH_CATCHUP_CHANNEL = 'proxy';
    expect(catchUpChannel()).toBe('proxy');
    delete process.env.TANDEM_BENCH_CATCHUP_CHANNEL;
    expect(['direct', 'proxy']).toContain(catchUpChannel());
  });
});
