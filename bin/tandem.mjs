#!/usr/bin/env node
// The `tandem` command. Node 20 cannot run TypeScript itself, so the tsx loader is registered
// first and the CLI runs from source: what the tests exercise is exactly what operators run.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../console/cli.ts');
process.exitCode = await main(process.argv.slice(2));
