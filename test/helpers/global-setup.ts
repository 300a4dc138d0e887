// Runs once around the whole suite. It gives this run a marker that every test child carries in
// its process title (forked workers inherit the environment), and after the run kills whatever
// carries it: a crashed worker's children, never another run's. It also brings the compiled CLI
// up to date once, before any test spawns it (bin/tandem.mjs would otherwise rebuild in each of
// the first agents started at once; they would all be right, only slower).
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { build } from '../../bin/build.mjs';
import { currentBuild } from '../../bin/current-build.mjs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export default async function setup(): Promise<() => void> {
  if (!currentBuild(PROJECT).fresh) await build({ root: PROJECT });
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
