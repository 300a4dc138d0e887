// `npm run soak`: 50 switchovers back and forth while a client stores 20 files a second through
// the demo application (issue 11). Every switchover must succeed without --force, every write
// the client was told is stored must be on both nodes, `tandem verify` must find no difference,
// and the scripts log must never show a start while the other node serves. Prints the figures
// (the README quotes them) and exits 1 if any of that does not hold.
//
//   npm run soak -- [--switchovers N] [--rate FILES_PER_SECOND] [--keep]
import { parseArgs } from 'node:util';
import { killAll } from '../test/helpers/processes.ts';
import { TestPair } from '../test/helpers/pair.ts';
import { summary, switchoverSoak } from '../test/helpers/switchover-soak.ts';

const { values } = parseArgs({ options: { switchovers: { type: 'string', default: '50' }, rate: { type: 'string', default: '20' }, keep: { type: 'boolean' } } });
const switchovers = Number(values.switchovers);
const rate = Number(values.rate);
if (!Number.isInteger(switchovers) || switchovers < 1 || !(rate > 0)) {
  process.stderr.write('usage: npm run soak -- [--switchovers N] [--rate FILES_PER_SECOND] [--keep]\n');
  process.exit(2);
}
if (values.keep === true) process.env.TANDEM_KEEP_TEST_DIRS = '1';

const t0 = Date.now();
const pair = await TestPair.create();
let failed = true;
try {
  await pair.startBoth();
  const r = await switchoverSoak(pair, { switchovers, ratePerSecond: rate, progress: (l) => process.stdout.write(`${l}\n`) });
  process.stdout.write(`\n${summary(r)}\nwall time: ${Math.round((Date.now() - t0) / 1000)} s\n`);
  const ok = r.runs.length === switchovers && r.runs.every((x) => x.code === 0) && r.missing.length === 0 && r.verifyDifferences === 0 && r.overlaps.length === 0;
  if (!ok) {
    for (const x of r.runs.filter((x) => x.code !== 0)) process.stdout.write(`FAILED: ${x.from} exit ${x.code}: ${x.stderr}\n`);
    if (r.missing.length > 0) process.stdout.write(`MISSING: ${r.missing.slice(0, 20).join(', ')}\n`);
    if (r.verifyDifferences !== 0) process.stdout.write(`VERIFY: ${r.verifyOutput}\n`);
    for (const o of r.overlaps) process.stdout.write(`OVERLAP: ${o}\n`);
  }
  failed = !ok;
} finally {
  await pair.cleanup();
  await killAll();
}
process.stdout.write(failed ? 'soak: FAILED\n' : 'soak: ok\n');
process.exit(failed ? 1 : 0);
