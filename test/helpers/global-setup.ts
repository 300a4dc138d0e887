// Runs once around the whole suite. It gives this run a marker that every test child carries in
// its process title (forked workers inherit the environment), and after the run kills whatever
// carries it: a crashed worker's children, never another run's.
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';

export default function setup(): () => void {
  process.env.TANDEM_TEST_RUN ??= crypto.randomBytes(4).toString('hex');
  const marker = `tandem-test-${process.env.TANDEM_TEST_RUN}`;
  return () => {
    try {
      execFileSync('pkill', ['-f', marker], { stdio: 'ignore' });
    } catch {
      // pkill exits 1 when nothing matched.
    }
  };
}
