// The script runner with real scripts in a temp folder: what reaches the script, what reaches
// the log, how failures and timeouts end, and that start and stop never overlap.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { exited, spawnTracked, TEST_MARKER } from '../../helpers/processes.ts';
import { KILL_GRACE_MS, ScriptRunner, processAlive, type ScriptContext } from '../../../agent/scripts/index.ts';
import { captureLog, sleep, tempDir, writeScript, type LogCapture } from './fixtures.ts';

const ctx: ScriptContext = { role: 'active', reason: 'test run', generation: 'g-42' };
const dirs: string[] = [];
const strays: number[] = [];

afterEach(() => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const EMFILE_CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'emfile-child.ts');

function setup(bodies: Partial<Record<'start' | 'stop' | 'check', string>>, opts: { timeoutMs?: number; checkTimeoutMs?: number; umask?: number } = {}) {
  const dir = tempDir();
  dirs.push(dir);
  const paths = {
    start: writeScript(dir, 'start.sh', bodies.start ?? 'exit 0'),
    stop: writeScript(dir, 'stop.sh', bodies.stop ?? 'exit 0'),
    check: writeScript(dir, 'check.sh', bodies.check ?? 'exit 0'),
  };
  const cap: LogCapture = captureLog();
  const runner = new ScriptRunner({
    paths,
    timeoutMs: opts.timeoutMs ?? 10_000,
    checkTimeoutMs: opts.checkTimeoutMs ?? 10_000,
    env: { node: 'alpha', peer: 'beta', pair: 'demo' },
    umask: opts.umask,
    log: cap.log,
  });
  return { dir, paths, runner, cap };
}

const readPid = (file: string) => Number(fs.readFileSync(file, 'utf8').trim());

describe('the script runner', () => {
  it('gives the script the TANDEM_ environment on top of the agent\'s own, in the script\'s folder', async () => {
    const { dir, runner } = setup({ start: 'env | grep "^TANDEM_" | sort > env.out; printf "%s\\n%s\\n" "$PWD" "${PATH:+has-path}" > more.out' });
    const result = await runner.run('start', ctx);
    expect(result).toMatchObject({ name: 'start', ok: true, exitCode: 0, signal: null, timedOut: false });
    const env = Object.fromEntries(fs.readFileSync(path.join(dir, 'env.out'), 'utf8').trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    expect(env).toMatchObject({
      TANDEM_NODE: 'alpha',
      TANDEM_PEER: 'beta',
      TANDEM_PAIR: 'demo',
      TANDEM_ROLE: 'active',
      TANDEM_REASON: 'test run',
      TANDEM_GENERATION: 'g-42',
      TANDEM_SCRIPT: 'start',
    });
    expect(fs.readFileSync(path.join(dir, 'more.out'), 'utf8').split('\n')).toEqual([fs.realpathSync(dir), 'has-path', '']);
  });

  it('logs each stdout line at info and each stderr line at warn, then one result line', async () => {
    const { runner, cap } = setup({ check: 'echo "first line"; echo "a warning" >&2; echo "second line"; printf "no newline at the end"' });
    const result = await runner.run('check', ctx);
    expect(result.ok).toBe(true);
    const out = cap.lines().filter((l) => l.stream !== undefined);
    expect(out.map((l) => [l.level, l.stream, l.msg])).toEqual(
      expect.arrayContaining([
        ['info', 'stdout', 'first line'],
        ['warn', 'stderr', 'a warning'],
        ['info', 'stdout', 'second line'],
        ['info', 'stdout', 'no newline at the end'],
      ]),
    );
    expect(out).toHaveLength(4);
    for (const l of out) expect(l).toMatchObject({ component: 'scripts', script: 'check' });
    const stdout = out.filter((l) => l.stream === 'stdout').map((l) => l.msg);
    expect(stdout).toEqual(['first line', 'second line', 'no newline at the end']);
    // A healthy check is a debug line: every few seconds, it is not news.
    expect(cap.lines().filter((l) => l.msg === 'script: check ok')).toEqual([
      expect.objectContaining({ level: 'debug', component: 'scripts', script: 'check', exitCode: 0, reason: 'test run', durationMs: expect.any(Number) }),
    ]);
  });

  it('cuts long lines and stops logging after a thousand lines, saying how many it dropped', async () => {
    const { runner, cap } = setup({ start: 'head -c 5000 /dev/zero | tr "\\0" x; echo; i=0; while [ $i -lt 1200 ]; do echo "line $i"; i=$((i + 1)); done' });
    const result = await runner.run('start', ctx);
    expect(result.ok).toBe(true);
    const out = cap.lines().filter((l) => l.stream === 'stdout');
    expect(out).toHaveLength(1000);
    expect(out[0]).toMatchObject({ truncated: true });
    expect(out[0]!.msg).toBe('x'.repeat(2000));
    expect(out[999]!.msg).toBe('line 998');
    expect(cap.lines().find((l) => l.msg === 'script: start output cut')).toMatchObject({ level: 'warn', droppedLines: 201 });
    expect(cap.lines().find((l) => l.msg === 'script: start ok')).toMatchObject({ level: 'info' });
  });

  it('reports a non-zero exit as a failed run, logged at warn', async () => {
    const { runner, cap } = setup({ stop: 'echo "cannot stop" >&2; exit 3' });
    const result = await runner.run('stop', { ...ctx, reason: 'demote' });
    expect(result).toMatchObject({ name: 'stop', ok: false, exitCode: 3, signal: null, timedOut: false });
    expect(result.error).toBeUndefined();
    expect(cap.lines().find((l) => l.msg === 'script: stop failed')).toMatchObject({ level: 'warn', exitCode: 3, reason: 'demote', component: 'scripts' });
  });

  it('kills the whole process group of a script that outlives its timeout, grandchildren included', async () => {
    const { dir, runner } = setup({ start: 'sleep 30 & echo $! > grandchild.pid; sleep 30' }, { timeoutMs: 400 });
    const result = await runner.run('start', ctx);
    strays.push(readPid(path.join(dir, 'grandchild.pid')));
    expect(result).toMatchObject({ ok: false, timedOut: true, exitCode: null, signal: 'SIGTERM' });
    expect(result.durationMs).toBeGreaterThanOrEqual(400);
    expect(result.durationMs).toBeLessThan(400 + KILL_GRACE_MS);
    expect(processAlive(readPid(path.join(dir, 'grandchild.pid')))).toBe(false);
  });

  it('follows SIGTERM with SIGKILL when the script\'s processes ignore it', async () => {
    const { dir, runner, cap } = setup({ check: 'trap "" TERM; sleep 30 & echo $! > grandchild.pid; sleep 30' }, { checkTimeoutMs: 300 });
    const result = await runner.run('check', ctx);
    strays.push(readPid(path.join(dir, 'grandchild.pid')));
    expect(result).toMatchObject({ ok: false, timedOut: true, signal: 'SIGKILL' });
    expect(result.durationMs).toBeGreaterThanOrEqual(300 + KILL_GRACE_MS);
    expect(processAlive(readPid(path.join(dir, 'grandchild.pid')))).toBe(false);
    expect(cap.lines().some((l) => l.msg.includes('sending SIGKILL'))).toBe(true);
  });

  it('reports a missing script and a script without the execute bit as failed runs with an error, never a throw', async () => {
    const { dir, runner } = setup({});
    fs.rmSync(path.join(dir, 'start.sh'));
    writeScript(dir, 'stop.sh', 'exit 0', 0o644);
    const missing = await runner.run('start', ctx);
    expect(missing).toMatchObject({ name: 'start', ok: false, exitCode: null, signal: null, timedOut: false });
    expect(missing.error).toMatch(/start\.sh: no such file/);
    const notExecutable = await runner.run('stop', ctx);
    expect(notExecutable).toMatchObject({ name: 'stop', ok: false, exitCode: null });
    expect(notExecutable.error).toMatch(/stop\.sh: not executable/);
  });

  it('runs start and stop one after the other when both are asked for at once', async () => {
    const body = 'echo "$TANDEM_SCRIPT begin $(date +%s%N)" >> runs.log; sleep 0.3; echo "$TANDEM_SCRIPT end $(date +%s%N)" >> runs.log';
    const { dir, runner } = setup({ start: body, stop: body });
    const [a, b, c] = await Promise.all([runner.run('start', ctx), runner.run('stop', ctx), runner.run('start', ctx)]);
    expect([a.ok, b.ok, c.ok]).toEqual([true, true, true]);
    const events = fs.readFileSync(path.join(dir, 'runs.log'), 'utf8').trim().split('\n').map((l) => l.split(' '));
    expect(events.map(([s, e]) => `${s} ${e}`)).toEqual(['start begin', 'start end', 'stop begin', 'stop end', 'start begin', 'start end']);
    const times = events.map((e) => BigInt(e[2]!));
    for (let i = 1; i < times.length; i++) expect(times[i]! >= times[i - 1]!).toBe(true);
  });

  it('runs a check after the start and stop already asked for, and never two checks at once', async () => {
    const body = 'echo "$TANDEM_SCRIPT begin" >> runs.log; sleep 0.2; echo "$TANDEM_SCRIPT end" >> runs.log';
    const { dir, runner } = setup({ start: body, stop: body, check: body });
    await Promise.all([runner.run('start', ctx), runner.run('check', ctx), runner.run('check', ctx), runner.run('stop', ctx)]);
    const events = fs.readFileSync(path.join(dir, 'runs.log'), 'utf8').trim().split('\n');
    expect(events).toEqual(['start begin', 'start end', 'stop begin', 'stop end', 'check begin', 'check end', 'check begin', 'check end']);
  });

  it('does not hold a stop behind a slow check', async () => {
    const body = 'echo "$TANDEM_SCRIPT begin" >> runs.log; sleep 0.5; echo "$TANDEM_SCRIPT end" >> runs.log';
    const { dir, runner } = setup({ stop: 'echo "stop ran" >> runs.log', check: body });
    const check = runner.run('check', ctx);
    await sleep(200);
    await runner.run('stop', ctx);
    await check;
    expect(fs.readFileSync(path.join(dir, 'runs.log'), 'utf8').trim().split('\n')).toEqual(['check begin', 'stop ran', 'check end']);
  });

  it('does not wait for a daemon the script left behind holding its output open', async () => {
    const { dir, runner } = setup({ start: 'sleep 30 & echo $! > daemon.pid; echo started' });
    const result = await runner.run('start', ctx);
    const daemon = readPid(path.join(dir, 'daemon.pid'));
    strays.push(daemon);
    expect(result).toMatchObject({ ok: true, exitCode: 0 });
    expect(result.durationMs).toBeLessThan(2000);
    // A successful script's leftovers are its business (the demo's start leaves its application).
    expect(processAlive(daemon)).toBe(true);
  });

  it('keeps the last fifty results, with when and why each ran', async () => {
    const { runner } = setup({});
    for (let i = 0; i < 55; i++) await runner.run('check', { ...ctx, reason: `run ${i}` });
    const history = runner.history();
    expect(history).toHaveLength(50);
    expect(history[0]).toMatchObject({ name: 'check', ok: true, reason: 'run 5', role: 'active', generation: 'g-42', at: expect.any(Number) });
    expect(history[49]!.reason).toBe('run 54');
  });

  it('refuses relative script paths and non-positive timeouts at construction', () => {
    const base = { paths: { start: '/a/start.sh', stop: '/a/stop.sh', check: '/a/check.sh' }, timeoutMs: 1000, checkTimeoutMs: 1000, env: { node: 'a', peer: 'b', pair: 'p' }, log: captureLog().log };
    expect(() => new ScriptRunner({ ...base, paths: { ...base.paths, stop: 'stop.sh' } })).toThrow(/scripts\.stop/);
    expect(() => new ScriptRunner({ ...base, timeoutMs: 0 })).toThrow(/scripts\.timeout/);
  });

  it('reports a spawn that fails for lack of descriptors (EMFILE) as a local failure, and the process survives to run it again', async () => {
    const { paths } = setup({ check: 'exit 0' });
    // A low limit, so that the child runs out quickly; the runner inside opens /dev/null until it does.
    const child = spawnTracked('prlimit', ['--nofile=128:128', process.execPath, `--title=${TEST_MARKER}`, '--import', 'tsx', EMFILE_CHILD, paths.check], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await exited(child);
    expect(code, err).toBe(0);
    const [starved, fed] = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(starved!.held as number).toBeGreaterThan(50);
    expect(starved).toMatchObject({ run: 'starved', ok: false, exitCode: null, localFailure: true });
    expect(starved!.error).toMatch(/EMFILE/);
    expect(fed).toMatchObject({ run: 'fed', ok: true, exitCode: 0 });
    expect(fed!.localFailure).toBeUndefined();
  });

  it('runs scripts with the mask it is given, not the agent\'s own, and still in their own process group', async () => {
    const { dir, runner } = setup({ start: 'umask > umask.out; touch created.file; ps -o pgid= -p $$ | tr -d " " > pgid.out; echo $$ > pid.out' }, { umask: 0o022 });
    const before = process.umask(0o077);
    try {
      const result = await runner.run('start', ctx);
      expect(result).toMatchObject({ ok: true, exitCode: 0 });
    } finally {
      process.umask(before);
    }
    expect(fs.readFileSync(path.join(dir, 'umask.out'), 'utf8').trim()).toBe('0022');
    expect(fs.statSync(path.join(dir, 'created.file')).mode & 0o777).toBe(0o644);
    // exec replaced the wrapping shell: the script leads its own group.
    expect(fs.readFileSync(path.join(dir, 'pgid.out'), 'utf8').trim()).toBe(fs.readFileSync(path.join(dir, 'pid.out'), 'utf8').trim());
  });
});
