// Checks shared by the link monitors' constructors: bad options throw at construction with the
// option's name, never later inside a timer where nobody can catch them.
import { PAIR_KEY_MIN_BYTES } from '../../shared/constants.ts';
import { TandemError } from '../../shared/errors.ts';

/** Node and pair names as the channel accepts them (the config is stricter). */
export const NODE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function invalidOption(op: string, key: string, reason: string): TandemError {
  return new TandemError({ code: 'TANDEM_ERR_CONFIG_INVALID', op, reason: `option "${key}": ${reason}`, hint: 'see docs/links.md', details: { key } });
}

export function checkPositiveInt(op: string, key: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw invalidOption(op, key, `expected a positive integer, got ${String(v)}`);
}

export function checkName(op: string, key: string, v: unknown): void {
  if (typeof v !== 'string' || !NODE_NAME.test(v)) throw invalidOption(op, key, `expected 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(v)}`);
}

export function checkPort(op: string, key: string, v: unknown, allowZero: boolean): void {
  const min = allowZero ? 0 : 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65_535) throw invalidOption(op, key, `expected ${min}-65535, got ${String(v)}`);
}

export function checkHost(op: string, key: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0) throw invalidOption(op, key, 'expected a host name or address');
}

export function checkPairKey(op: string, key: unknown): void {
  if (!Buffer.isBuffer(key) || key.length < PAIR_KEY_MIN_BYTES) {
    throw new TandemError({
      code: 'TANDEM_ERR_KEY_INVALID',
      op,
      reason: `the pair key must be at least ${PAIR_KEY_MIN_BYTES} bytes`,
      hint: 'both nodes must hold the same pair key file; see docs/errors.md',
    });
  }
}
