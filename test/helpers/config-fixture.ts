// A small valid tandem.yaml (lines 1-8) for tests of how configs are read and refused, and a
// temp-file writer for it: problems appended after it land on known lines from 9 on.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const MINIMAL_CONFIG = `pair: demo
node: alpha
nodes:
  alpha: { channel: "127.0.0.1:7001", control: "127.0.0.1:7101" }
  beta: { channel: "127.0.0.1:7002", control: "127.0.0.1:7102" }
protect:
  - name: data
    path: ./data
`;

/** Two schema problems after MINIMAL_CONFIG: journal.maxByte (line 10) and heartbeat.threshold (line 12). */
export const TWO_PROBLEMS = `${MINIMAL_CONFIG}journal:
  maxByte: 1GiB
heartbeat:
  threshold: five
`;

/** Writes `text` as tandem.yaml in a new temp directory, recorded in `dirs` for cleanup. */
export function writeConfig(text: string, dirs: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tandem-config-${process.pid}-`));
  dirs.push(dir);
  const file = path.join(dir, 'tandem.yaml');
  fs.writeFileSync(file, text);
  return file;
}
