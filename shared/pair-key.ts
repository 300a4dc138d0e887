// The pair key: 32 random bytes made at install time, written as hex to a file only the
// owner can read. It authenticates the two agents to each other (and keys TLS-PSK); it is
// never logged and never sent.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { PAIR_KEY_MIN_BYTES } from './constants.ts';
import { TandemError } from './errors.ts';

export function generatePairKey(): Buffer {
  return crypto.randomBytes(PAIR_KEY_MIN_BYTES);
}

export function writePairKey(file: string, key: Buffer): void {
  fs.writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

export function readPairKey(file: string): Buffer {
  const op = `read pair key ${file}`;
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw TandemError.wrap(err, {
      code: 'TANDEM_ERR_KEY_INVALID',
      op,
      hint: 'tandem install primary makes the pair key (/etc/tandem/pair.key) and tandem install secondary --from PACK brings it to the other node; or copy the primary\'s key file (0600) and point keyFile in tandem.yaml at it',
    });
  }
  if ((st.mode & 0o077) !== 0) {
    throw new TandemError({
      code: 'TANDEM_ERR_KEY_INVALID',
      op,
      reason: `the file is readable by group or others (mode ${(st.mode & 0o777).toString(8)})`,
      hint: `chmod 600 ${file}`,
    });
  }
  if (!/^[0-9a-fA-F]+$/.test(text) || text.length % 2 !== 0 || text.length / 2 < PAIR_KEY_MIN_BYTES) {
    throw new TandemError({
      code: 'TANDEM_ERR_KEY_INVALID',
      op,
      reason: `expected at least ${PAIR_KEY_MIN_BYTES} bytes written as hex`,
      hint: 'tandem install primary makes a valid key; both nodes must hold the same file (docs/install.md)',
    });
  }
  return Buffer.from(text, 'hex');
}
