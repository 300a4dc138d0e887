// The CLI runs compiled JavaScript, and never a build older than the sources: what runs is
// proven against the sources' content at every start (bin/current-build.mjs), and an edit is
// compiled before anything runs. Shown on a copy of the project, so the tree is never edited.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildId, hashFile } from '../../../bin/build.mjs';
import { PROJECT } from '../../helpers/pair.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tandem-build-${process.pid}-`));
  dirs.push(d);
  return d;
}

function run(root: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/tandem.mjs'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface BuildInfo {
  id: string;
  inputs: Record<string, { sha256: string }>;
}

const readInfo = (root: string) => JSON.parse(fs.readFileSync(path.join(root, 'dist/current.json'), 'utf8')) as BuildInfo;

/** A copy of the project's sources and bin/, sharing node_modules, with no build yet. */
function copyProject(): string {
  const root = tempDir();
  for (const d of ['agent', 'console', 'shared', 'installer', 'bin']) fs.cpSync(path.join(PROJECT, d), path.join(root, d), { recursive: true });
  fs.copyFileSync(path.join(PROJECT, 'package.json'), path.join(root, 'package.json'));
  fs.symlinkSync(path.join(PROJECT, 'node_modules'), path.join(root, 'node_modules'));
  return root;
}

describe('the compiled CLI', () => {
  it('runs the build whose recorded inputs are exactly the sources as they are now', () => {
    const r = run(PROJECT, ['--help']);
    expect(r.code).toBe(0);
    const info = readInfo(PROJECT);
    // Every input hashed from disk now: the id of the build that ran is the id of these bytes.
    const now = Object.fromEntries(Object.keys(info.inputs).map((rel) => [rel, { sha256: hashFile(path.join(PROJECT, rel)) }]));
    expect(buildId(now)).toBe(info.id);
    expect(Object.keys(info.inputs)).toEqual(expect.arrayContaining(['console/cli.ts', 'console/commands/status.ts', 'agent/main.ts', 'bin/build.mjs', 'package.json']));
    expect(fs.existsSync(path.join(PROJECT, 'dist', info.id, 'cli.js'))).toBe(true);
  });

  it('compiles an edited source before it runs, so a stale build never runs', () => {
    const root = copyProject();
    const first = run(root, ['--help']);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('show both nodes of the pair');
    const id1 = readInfo(root).id;

    // An edit, as a developer makes it between two runs of a test.
    const registry = path.join(root, 'console/command-registry.ts');
    fs.writeFileSync(registry, fs.readFileSync(registry, 'utf8').replace('show both nodes of the pair', 'SHOW THE EDITED PAIR'));
    const second = run(root, ['--help']);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('SHOW THE EDITED PAIR');
    const id2 = readInfo(root).id;
    expect(id2).not.toBe(id1);

    // A deeper edit (a module only one command loads) is seen too.
    const pairView = path.join(root, 'console/pair-view.ts');
    fs.writeFileSync(pairView, fs.readFileSync(pairView, 'utf8').replace("lines.push('Last role change');", "lines.push('LAST ROLE CHANGE (edited)');"));
    const cfg = path.join(root, 'no-such.yaml');
    const third = run(root, ['status', '-c', cfg]);
    expect(third.code).toBe(1);
    expect(readInfo(root).id).not.toBe(id2);
    expect(readInfo(root).inputs['console/pair-view.ts']!.sha256).toBe(hashFile(pairView));

    // Touched without a change (same bytes, new times): the same build runs, nothing is rebuilt.
    const id3 = readInfo(root).id;
    const builds = fs.readdirSync(path.join(root, 'dist')).filter((e) => /^[0-9a-f]{16}$/.test(e)).length;
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(registry, later, later);
    expect(run(root, ['--help']).code).toBe(0);
    expect(readInfo(root).id).toBe(id3);
    expect(fs.readdirSync(path.join(root, 'dist')).filter((e) => /^[0-9a-f]{16}$/.test(e)).length).toBe(builds);
  });

  it('refuses to run a stale build when it cannot compile, instead of running it', () => {
    const root = copyProject();
    expect(run(root, ['--help']).code).toBe(0);
    // No build tool: node_modules without esbuild.
    fs.rmSync(path.join(root, 'node_modules'));
    fs.mkdirSync(path.join(root, 'node_modules'));
    const registry = path.join(root, 'console/command-registry.ts');
    fs.appendFileSync(registry, '\n// edited\n');
    const r = run(root, ['--help']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('changed since build');
    expect(r.stderr).toContain('esbuild');
    expect(r.stdout).toBe('');
  });

  it('packs what tandem needs, and the packed CLI runs without the sources', () => {
    const dest = tempDir();
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dest], { cwd: PROJECT, stdio: 'ignore', timeout: 120_000 });
    const tarball = fs.readdirSync(dest).find((f) => f.endsWith('.tgz'))!;
    execFileSync('tar', ['-xzf', path.join(dest, tarball), '-C', dest]);
    const pkg = path.join(dest, 'package');
    const id = readInfo(pkg).id;
    for (const f of ['bin/tandem.mjs', 'bin/current-build.mjs', `dist/${id}/cli.js`, 'console/demo/demo-app.mjs']) expect(fs.existsSync(path.join(pkg, f)), f).toBe(true);
    expect(fs.existsSync(path.join(pkg, 'console/cli.ts'))).toBe(false);
    fs.symlinkSync(path.join(PROJECT, 'node_modules'), path.join(pkg, 'node_modules'));
    const help = run(pkg, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tandem COMMAND');
    // yaml and zod are compiled in: config check needs nothing from node_modules.
    fs.rmSync(path.join(pkg, 'node_modules'));
    const good = path.join(dest, 'tandem.yaml');
    fs.writeFileSync(good, 'pair: p\nnode: a\nnodes:\n  a: {channel: "127.0.0.1:1", control: "127.0.0.1:2"}\n  b: {channel: "127.0.0.1:3", control: "127.0.0.1:4"}\nprotect: [{name: data, path: ./data}]\n');
    const check = run(pkg, ['config', 'check', good]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
  });
});
