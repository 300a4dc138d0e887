// Applies a batch in a child process so that a test can kill it with SIGKILL at any point.
// argv: RECORDS_FILE ROOT_DIR KILL_AT_SEQ (-1: never) [marker] [WRITE_BEHIND_MIN_BYTES]. Prints "ready" after init and
// "durable N" for every durable report, synchronously, before the report returns, and
// "notice CODE" for each warning the applier kept, at the end.
import fs from 'node:fs';
import v8 from 'node:v8';
import { silentLogger } from '../../../shared/log.ts';
import type { DataRecord } from '../../../shared/protocol/index.ts';
import { Manifest } from '../../../agent/manifest/index.ts';
import { Applier } from '../../../agent/apply/applier.ts';

const [recordsFile, rootDir, killAt, , behindMin] = process.argv.slice(2);
const records = v8.deserialize(fs.readFileSync(recordsFile!)) as DataRecord[];
const killSeq = Number(killAt);
const applier = new Applier({
  roots: [{ name: 'data', path: rootDir!, exclude: [] }],
  manifest: new Manifest(['data']),
  blockSize: 4096,
  log: silentLogger(),
  seams: {
    ...(behindMin === undefined ? {} : { writeBehindMinBytes: Number(behindMin) }),
    beforeRecord: (r) => {
      if (r.seq === killSeq) process.kill(process.pid, 'SIGKILL');
    },
  },
});
await applier.init();
fs.writeSync(1, 'ready\n');
await applier.apply(records, async (seq) => {
  fs.writeSync(1, `durable ${seq}\n`);
});
for (const n of applier.noticeList()) fs.writeSync(1, `notice ${n.code}\n`);
await applier.close();
fs.writeSync(1, 'done\n');
