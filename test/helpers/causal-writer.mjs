// The causal-order writer (issue 9): N files, record k appended to file i only once record k of
// file i-1 is durable (fdatasync), for k = 1, 2, … until killed. A copy that is a real state of
// the disk holds a prefix of this history: counts c_0 >= c_1 >= … >= c_{N-1} >= c_0 - 1, never
// record k of file i without record k of file i-1. The test gives some files a large head
// (past 16 MiB) before the writer starts, so that file-by-file capture treats them as large.
//   node causal-writer.mjs DIR N
import fs from 'node:fs';
import path from 'node:path';

const [dir, nArg] = process.argv.slice(2);
const n = Number(nArg);
const RECORD_BYTES = 64;

const fds = [];
for (let i = 0; i < n; i++) fds.push(fs.openSync(path.join(dir, `f${String(i).padStart(2, '0')}`), 'a'));
fs.writeFileSync(path.join(dir, 'writer.ready'), String(process.pid));
for (let k = 1; ; k++) {
  for (let i = 0; i < n; i++) {
    const rec = Buffer.alloc(RECORD_BYTES, 0x20);
    rec.write(`k=${String(k).padStart(9, '0')} i=${String(i).padStart(2, '0')} t=${Date.now()} `, 0, 'latin1');
    rec[RECORD_BYTES - 1] = 0x0a;
    fs.writeSync(fds[i], rec);
    fs.fdatasyncSync(fds[i]);
  }
}
