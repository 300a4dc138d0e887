// Exclusion patterns of a protected root, with gitignore-like meaning:
//   "*.tmp"        no slash: matches a name at any depth (and everything below it)
//   "cache/"       trailing slash: the same, directories only in spirit (matched by name)
//   "build/out"    a slash inside: anchored at the root
//   "**/x", "a/**" "**" spans any number of path segments; "*" and "?" stay inside one segment
// An excluded directory excludes everything below it.

export type ExcludeMatcher = (relPath: string) => boolean;

export function compileExcludes(patterns: readonly string[]): ExcludeMatcher {
  const res = patterns.map(compileOne);
  if (res.length === 0) return () => false;
  return (relPath) => {
    if (relPath === '') return false;
    // Check the path and each of its ancestors: excluding a directory excludes its content.
    let p = relPath;
    for (;;) {
      for (const re of res) if (re.test(p)) return true;
      const i = p.lastIndexOf('/');
      if (i < 0) return false;
      p = p.slice(0, i);
    }
  };
}

function compileOne(pattern: string): RegExp {
  let p = pattern.trim().replace(/\/+$/, '');
  const anchored = p.includes('/');
  p = p.replace(/^\/+/, '');
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      // "**/" matches zero or more whole segments; a trailing "**" matches everything below.
      if (p[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(anchored ? `^${re}$` : `^(?:.*/)?${re}$`);
}
