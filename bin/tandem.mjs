#!/usr/bin/env node
// The `tandem` command. It runs the compiled build in dist/ (bin/build.mjs), never the
// TypeScript sources: Node 20 cannot run them without a loader that costs most of a second per
// start. In a checkout it first proves that the build matches the sources (bin/current-build.mjs)
// and builds again when it does not, so what runs is always what the sources say.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { currentBuild } from './current-build.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let b = currentBuild(root);
if (!b.fresh) {
  if (!b.sources) {
    process.stderr.write(`error: tandem: ${b.reason}, and no sources to build from\nhint: reinstall the package\n`);
    process.exit(1);
  }
  let build;
  try {
    ({ build } = await import('./build.mjs'));
    await import('esbuild');
  } catch {
    process.stderr.write(`error: tandem: ${b.reason}, and the build tool (esbuild) is not installed\nhint: npm install (it builds too), or npm run build\n`);
    process.exit(1);
  }
  await build({ root });
  b = currentBuild(root);
  if (!b.fresh) {
    process.stderr.write(`error: tandem: ${b.reason} (the sources changed while they were built)\nhint: run the command again\n`);
    process.exit(1);
  }
}
// An agent's logged stacks should name the TypeScript sources: read the build's source maps.
// Not for the short commands, whose start-up would pay for it.
if (process.argv[2] === 'agent') process.setSourceMapsEnabled(true);
const { main } = await import(pathToFileURL(b.entryFile).href);
process.exitCode = await main(process.argv.slice(2));
