// What npm does with this package: no install script runs without a decision in allowScripts
// (npm 11 warns about each one otherwise, on every fresh install), and npm pack ships what an
// installed `tandem` needs (the build, the manual the installer names) and nothing of the tests.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT } from '../helpers/pair.ts';

const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean>; files?: string[] };
const lock = JSON.parse(fs.readFileSync(path.join(PROJECT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };

describe('the npm package', () => {
  it('decides about every dependency with an install script (allowScripts)', () => {
    const withScripts = Object.entries(lock.packages)
      .filter(([k, v]) => k !== '' && v.hasInstallScript === true)
      .map(([k]) => k.slice(k.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(withScripts.length).toBeGreaterThan(0);
    const decided = Object.keys(pkg.allowScripts ?? {}).map((k) => k.replace(/@[^@/]+$/, ''));
    expect(withScripts.filter((name) => !decided.includes(name))).toEqual([]);
  });

  it('packs the command, its build and the manual, not the tests', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PROJECT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of ['bin/tandem.mjs', 'dist/current.json', 'docs/install.md', 'package.json', 'README.md', 'console/demo/demo-app.mjs']) expect(files, f).toContain(f);
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('bench/'))).toEqual([]);
  });
});
