// What Tandem refused with: tests assert the refusal's code, operation and hint, so a call that
// throws anything else (a bug) or succeeds (a missing check) fails the test on the spot.
import { TandemError } from '../../shared/errors.ts';

export function refusal(fn: () => unknown): TandemError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TandemError) return err;
    throw err;
  }
  throw new Error('expected a refusal, the call was accepted');
}

export async function refusalOf(p: Promise<unknown>): Promise<TandemError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TandemError) return err;
    throw err;
  }
  throw new Error('expected a refusal, the call was accepted');
}
