// Runs once around the whole suite: after it, no process started by a test may survive.
import { execFileSync } from 'node:child_process';

export default function setup(): () => void {
  return () => {
    // Belt and braces: every test kills what it started; this catches what a crashed worker left.
    try {
      execFileSync('pkill', ['-f', 'tandem-test-marker'], { stdio: 'ignore' });
    } catch {
      // pkill exits 1 when nothing matched.
    }
  };
}
