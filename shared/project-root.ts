// Where the package's own files live (bin/tandem.mjs, the demo application). Found by walking up
// from this module to the package.json named "tandem", because this code runs both from its
// TypeScript source (shared/) and from a compiled bundle (dist/<build>/), at different depths.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function projectRoot(): string {
  if (cached !== undefined) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'tandem') return (cached = dir);
    } catch {
      // No package.json here: keep walking up.
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`project root: no package.json named "tandem" above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
