#!/usr/bin/env node
// The build: bundles the CLI (console/cli.ts and everything it imports, the agent included) into
// compiled JavaScript under dist/, one directory per build named by the content hash of its
// sources, so a build is immutable once it exists and a running agent never sees its chunks
// change under it. dist/current.json names the build to run and lists every source file that
// went into it (size, times, inode, content hash): bin/current-build.mjs proves from that list,
// at every start, that what runs is what the sources say.
//
//   node bin/build.mjs [--if-stale] [--prune]
//
// Each command is its own chunk (console/command-registry.ts imports them lazily).
//
// The console's web page (console/web/) is compiled first, for browsers, into one script; the
// page, script, style and icon then go into the agent's bundle as one constant (the content of
// agent/control/dashboard-assets.ts, replaced here): no file to find at run time, no build step
// besides this one, and the page's sources count as inputs of the build like any other.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = 'console/cli.ts';
/** What decides how the sources are compiled (options, bundled packages, esbuild's version). */
const RECIPE = ['bin/build.mjs', 'package.json', 'node_modules/esbuild/package.json'];
/**
 * Dependencies compiled into the bundle: pure JavaScript that every config-reading command loads,
 * where one bundled file loads in about half the time of the package's many modules. The others
 * (native add-ons, worker files, WebAssembly) load from node_modules when a command needs them.
 */
const BUNDLED = new Set(['yaml', 'zod']);
/** Builds kept besides the current one: agents started from an older build may still load its chunks. */
const KEEP_OLD_BUILDS = 4;
/** The console's page: its script's entry, and the files put in as they are. */
const WEB_ENTRY = 'console/web/app.ts';
const WEB_FILES = { html: 'console/web/index.html', css: 'console/web/app.css', favicon: 'console/web/favicon.svg' };

export function hashFile(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** What current.json records of each input: enough to prove it unchanged without reading it. */
export function fingerprint(file) {
  const st = fs.statSync(file, { bigint: true });
  return { size: Number(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), ino: String(st.ino), sha256: hashFile(file) };
}

/** The build id: one hash over every input's path and content. */
export function buildId(inputs) {
  const h = crypto.createHash('sha256');
  for (const rel of Object.keys(inputs).sort()) h.update(`${rel}\0${inputs[rel].sha256}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Writes `data` to `file` so that a reader sees the old or the new content, never a part. */
export function writeAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/**
 * Builds into dist/<id>/ and points dist/current.json at it. Safe to run from several processes
 * at once (each builds apart and renames into place). Returns { id, ms, inputs }.
 */
export async function build({ root = ROOT, prune = false } = {}) {
  const t0 = performance.now();
  const { build: esbuild } = await import('esbuild');
  const dist = path.join(root, 'dist');
  fs.mkdirSync(dist, { recursive: true });
  // A source edited while esbuild read it would leave a bundle that matches neither version:
  // hash before and after, and build again until both agree.
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = fs.mkdtempSync(path.join(dist, '.build-'));
    try {
      const web = await buildDashboard(esbuild, root);
      const result = await esbuild({
        absWorkingDir: root,
        entryPoints: [ENTRY],
        outdir: tmp,
        bundle: true,
        splitting: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        external: externalPackages(root),
        // Bundled CommonJS (yaml's Node build) calls require(): give ESM chunks one.
        banner: { js: "import { createRequire as __tandemCreateRequire } from 'node:module'; const require = __tandemCreateRequire(import.meta.url);" },
        sourcemap: 'linked',
        keepNames: true,
        metafile: true,
        logLevel: 'silent',
        entryNames: '[name]',
        chunkNames: 'chunk-[hash]',
        plugins: [dashboardPlugin(web.assets)],
      });
      const inputs = {};
      // The build's own recipe counts as a source: a change in how it compiles is a new build.
      for (const rel of [...new Set([...Object.keys(result.metafile.inputs), ...web.inputs, ...RECIPE])].sort()) inputs[rel] = fingerprint(path.join(root, rel));
      const after = Object.keys(inputs).every((rel) => hashFile(path.join(root, rel)) === inputs[rel].sha256);
      if (!after) continue;
      const id = buildId(inputs);
      const target = path.join(dist, id);
      try {
        // mkdtemp made it 0700: an installed package is read by users other than its installer.
        fs.chmodSync(tmp, 0o755);
        fs.renameSync(tmp, target);
      } catch (err) {
        // Another process built the same sources first: its build is ours.
        if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      }
      writeAtomic(path.join(dist, 'current.json'), `${JSON.stringify({ id, entry: 'cli.js', builtAt: new Date().toISOString(), inputs }, null, 1)}\n`);
      pruneBuilds(dist, id, prune ? 0 : KEEP_OLD_BUILDS);
      return { id, ms: Math.round(performance.now() - t0), inputs };
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  throw new Error('build: the sources kept changing while they were compiled; try again');
}

/**
 * The console's page for browsers: app.ts and what it imports in one minified script (no
 * package of ours reaches the browser: the page is plain DOM), beside the HTML, CSS and icon.
 */
async function buildDashboard(esbuild, root) {
  const r = await esbuild({
    absWorkingDir: root,
    entryPoints: [WEB_ENTRY],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
  });
  const js = r.outputFiles[0].text;
  const read = (rel) => fs.readFileSync(path.join(root, rel), 'utf8');
  return {
    assets: { html: read(WEB_FILES.html), js, css: read(WEB_FILES.css), favicon: read(WEB_FILES.favicon) },
    inputs: [...Object.keys(r.metafile.inputs), ...Object.values(WEB_FILES)],
  };
}

/** Replaces the stand-in module of the agent's sources with the page just compiled. */
function dashboardPlugin(assets) {
  return {
    name: 'tandem-dashboard',
    setup(b) {
      b.onLoad({ filter: /[\\/]agent[\\/]control[\\/]dashboard-assets\.ts$/ }, () => ({ contents: `export const BUILT_DASHBOARD = ${JSON.stringify(assets)};\n`, loader: 'js' }));
    },
  };
}

function externalPackages(root) {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const names = Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.devDependencies });
  return names.filter((n) => !BUNDLED.has(n)).flatMap((n) => [n, `${n}/*`]);
}

function pruneBuilds(dist, current, keep) {
  const old = fs
    .readdirSync(dist, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== current && /^[0-9a-f]{16}$/.test(e.name))
    .map((e) => ({ name: e.name, mtime: fs.statSync(path.join(dist, e.name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const e of old.slice(keep)) fs.rmSync(path.join(dist, e.name), { recursive: true, force: true });
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const { currentBuild } = await import('./current-build.mjs');
  if (args.includes('--if-stale') && currentBuild(ROOT).fresh) process.exit(0);
  const r = await build({ prune: args.includes('--prune') });
  process.stdout.write(`tandem: built ${r.id} from ${Object.keys(r.inputs).length} sources in ${r.ms} ms (dist/${r.id})\n`);
}
