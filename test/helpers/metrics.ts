// Reading /metrics in tests: the Prometheus text parsed into samples, the names docs/metrics.md
// documents, and Debian's promtool as the judge of the format.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT } from './pair.ts';

/** name → samples ("name{labels}" → value) of a Prometheus text exposition. */
export function parseMetrics(text: string): { families: Map<string, string>; samples: Map<string, number> } {
  const families = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) families.set(type[1]!, type[2]!);
    if (line.startsWith('#')) continue;
    const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    samples.set(m[1]!, m[2] === 'NaN' ? NaN : Number(m[2]));
  }
  return { families, samples };
}

/** The metric names of docs/metrics.md's table. */
export function documentedMetrics(): string[] {
  const doc = fs.readFileSync(path.join(PROJECT, 'docs/metrics.md'), 'utf8');
  return [...doc.matchAll(/^\| `(tandem_[a-z_]+)` \|/gm)].map((m) => m[1]!);
}

export function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

