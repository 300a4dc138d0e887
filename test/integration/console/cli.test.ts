// The command line as an operator meets it, run as a process: exit codes, "did you mean", units
// on durations, and `tandem config check` listing every problem of a file.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { tandem } from '../../helpers/cli.ts';
import { MINIMAL_CONFIG, TWO_PROBLEMS, writeConfig } from '../../helpers/config-fixture.ts';
import { killAll } from '../../helpers/processes.ts';

const dirs: string[] = [];
afterEach(async () => {
  await killAll();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const write = (text: string) => writeConfig(text, dirs);
const GOOD = MINIMAL_CONFIG;

describe('tandem (command line)', () => {
  it('suggests the closest command or flag for a typo, with exit code 2', async () => {
    const cmd = await tandem(['stauts', '-c', 'x.yaml']);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain('unknown command "stauts"; did you mean "status"?');
    expect(cmd.stderr).toContain('hint: tandem status --help');

    const flag = await tandem(['status', '--jsno', '-c', 'x.yaml']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown option --jsno; did you mean --json?');

    const sub = await tandem(['config', 'chek', 'x.yaml']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toContain('did you mean "check"?');
  });

  it('refuses a duration without a unit before asking any agent, and says how to write it', async () => {
    for (const command of ['switchover', 'verify', 'resolve']) {
      const extra = command === 'resolve' ? ['--keep', 'alpha'] : [];
      const r = await tandem([command, '-c', '/nonexistent/tandem.yaml', ...extra, '--timeout', '10']);
      expect(r.code, command).toBe(2);
      expect(r.stderr).toContain('--timeout 10: a duration needs a unit');
      expect(r.stderr).toContain('write --timeout 10s for seconds or --timeout 10ms for milliseconds');
      // Refused as a usage error, not blamed on an agent or the config.
      expect(r.stderr).not.toContain('CONTROL_UNREACHABLE');
      expect(r.stderr).not.toContain('CONFIG');
    }
    const watch = await tandem(['status', '-c', '/nonexistent/tandem.yaml', '--watch', '--interval', '1']);
    expect(watch.code).toBe(2);
    expect(watch.stderr).toContain('--interval 1: a duration needs a unit');
    // --json answers in JSON even then.
    const json = await tandem(['status', '-c', '/nonexistent/tandem.yaml', '--json', '--timeout', '5']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'TANDEM_ERR_USAGE', message: expect.stringContaining('--timeout 5: a duration needs a unit') } });
  });

  it('config check: lists every problem with line and column and exits 1; a good file exits 0', async () => {
    const bad = write(`${TWO_PROBLEMS}channel:
  reconnectMin: 5s
  reconnectMax: 1s
`);
    const r = await tandem(['config', 'check', bad]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual([
      `${bad}:10:3: journal.maxByte: unknown key "maxByte"; did you mean "maxBytes"?`,
      expect.stringMatching(new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:12:14: heartbeat.threshold: `)),
      '2 problems',
    ]);
    // The rule across keys (reconnectMax < reconnectMin) shows once the shape is right.
    const fixed = write(GOOD + 'channel:\n  reconnectMin: 5s\n  reconnectMax: 1s\nblockSize: 1000\n');
    const r2 = await tandem(['config', 'check', fixed, '--json']);
    expect(r2.code).toBe(1);
    const doc = JSON.parse(r2.stdout);
    expect(doc.ok).toBe(false);
    expect(doc.problems.map((p: { key: string; line: number }) => [p.key, p.line])).toEqual([
      ['channel.reconnectMax', 11],
      ['blockSize', 12],
    ]);

    const good = await tandem(['config', 'check', write(GOOD)]);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain(': ok (pair demo, node alpha, peer beta, 1 protected root)');
  });

  it('the agent refuses to start on such a config, naming every problem', async () => {
    const bad = write(TWO_PROBLEMS);
    const r = await tandem(['agent', '-c', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error TANDEM_ERR_CONFIG_INVALID');
    expect(r.stderr).toContain('2 problems');
    expect(r.stderr).toContain('line 10, column 3: journal.maxByte: unknown key "maxByte"; did you mean "maxBytes"?');
    expect(r.stderr).toContain('line 12, column 14: heartbeat.threshold:');
  });
});
