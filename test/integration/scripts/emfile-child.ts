// A script runner alone in a process started with a low descriptor limit (prlimit --nofile):
// it opens /dev/null until the process runs out of descriptors, runs the check script, lets the
// descriptors go and runs it again. Prints one JSON line per run; exits 0 if it survived.
// argv: CHECK_SCRIPT
import fs from 'node:fs';
import { ScriptRunner } from '../../../agent/scripts/index.ts';
import { silentLogger } from '../../../shared/log.ts';

const check = process.argv[2]!;
const runner = new ScriptRunner({
  paths: { start: check, stop: check, check },
  timeoutMs: 10_000,
  checkTimeoutMs: 10_000,
  env: { node: 'alpha', peer: 'beta', pair: 'demo' },
  log: silentLogger(),
});
const held: number[] = [];
for (;;) {
  try {
    held.push(fs.openSync('/dev/null', 'r'));
  } catch {
    break;
  }
}
const starved = await runner.run('check', { role: 'active', reason: 'starved', generation: 'g' });
fs.writeSync(1, `${JSON.stringify({ run: 'starved', held: held.length, ...starved })}\n`);
for (const fd of held.splice(0)) fs.closeSync(fd);
const fed = await runner.run('check', { role: 'active', reason: 'fed', generation: 'g' });
fs.writeSync(1, `${JSON.stringify({ run: 'fed', ...fed })}\n`);
