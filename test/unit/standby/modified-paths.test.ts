import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModifiedPaths } from '../../../agent/standby/modified-paths.ts';
import { silentLogger } from '../../../shared/log.ts';
import { tmpDir } from '../apply/helpers.ts';

let dir: string;
let file: string;
beforeEach(() => {
  dir = tmpDir('tandem-modified-');
  file = path.join(dir, 'standby/modified.json');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ModifiedPaths', () => {
  it('names at most five paths in the alarm, all of them in its count, and says what the operator risks', async () => {
    const m = await ModifiedPaths.load(file, silentLogger());
    expect(m.alarm()).toBeUndefined();
    for (let i = 0; i < 8; i++) expect(m.flag('data', `f${i}`, i === 0 ? 'removed' : 'size', 1000 + i)).toBe('new');
    expect(m.flag('data', 'f1', 'mode', 2000)).toBe('known');
    const a = m.alarm()!;
    expect(a.code).toBe('TANDEM_ERR_PASSIVE_MODIFIED');
    expect(a.message).toBe("the passive's copy was changed by someone other than Tandem: 8 paths (data/f0 removed, data/f1 written, data/f2 written, data/f3 written, data/f4 written, and 3 more)");
    expect(a.since).toBe(1000);
    expect(a.hint).toMatch(/takes over it serves these paths as they are/);
    expect((a.details as { paths: unknown[] }).paths).toHaveLength(8);
  });

  it('tracks at most its bound, and says there were more', async () => {
    const m = await ModifiedPaths.load(file, silentLogger(), 3);
    for (let i = 0; i < 3; i++) m.flag('data', `f${i}`, 'created', i);
    expect(m.flag('data', 'f3', 'created', 3)).toBe('dropped');
    expect(m.size).toBe(3);
    expect(m.alarm()!.message).toMatch(/: more than 3 paths \(/);
    m.clear('data', 'f0');
    expect(m.alarm()!.message).toMatch(/: more than 2 paths/);
    expect(m.endOverflow()).toBe(true);
    expect(m.alarm()!.message).toMatch(/: 2 paths/);
  });

  it('finds the tracked paths below a directory without the others', async () => {
    const m = await ModifiedPaths.load(file, silentLogger());
    for (const p of ['a/b/c', 'a/b/d', 'a/bc', 'x']) m.flag('data', p, 'created', 0);
    expect(m.under('data', 'a/b').map((f) => f.path).sort()).toEqual(['a/b/c', 'a/b/d']);
    expect(m.under('data', 'a').map((f) => f.path).sort()).toEqual(['a/b/c', 'a/b/d', 'a/bc']);
    expect(m.under('data', 'x')).toEqual([]);
    expect(m.under('other', '')).toEqual([]);
    m.clear('data', 'a/b/c');
    m.clear('data', 'a/b/d');
    expect(m.under('data', 'a/b')).toEqual([]);
  });

  it('survives a restart in a file readable by root alone, and ignores what a damaged or hostile file holds', async () => {
    const m = await ModifiedPaths.load(file, silentLogger());
    m.flag('data', 'a.txt', 'content', 5);
    await m.save();
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const again = await ModifiedPaths.load(file, silentLogger());
    expect(again.list()).toEqual([{ root: 'data', path: 'a.txt', what: 'content', since: 5 }]);

    fs.writeFileSync(file, JSON.stringify({ format: 1, paths: [['data', '../../etc/passwd', 'created', 1], ['data', 'ok', 'nonsense', 1], ['data', 'b', 'removed', 2], 'junk'] }));
    expect((await ModifiedPaths.load(file, silentLogger())).list().map((f) => f.path)).toEqual(['b']);
    fs.writeFileSync(file, '{ not json');
    expect((await ModifiedPaths.load(file, silentLogger())).size).toBe(0);
  });
});

describe('the alarm of a name made by hand', () => {
  it('escapes control characters and cuts long names, so a name cannot rewrite an operator terminal', async () => {
    const m = await ModifiedPaths.load(path.join(dir, 'm.json'), silentLogger());
    m.flag('data', 'evil\n\u001b[2JALARM none', 'created', 1);
    m.flag('data', `long/${'x'.repeat(500)}`, 'created', 2);
    const msg = m.alarm()!.message;
    expect(msg).toContain('data/evil\\x0a\\x1b[2JALARM none created');
    expect(msg).not.toMatch(/[\u0000-\u001f]/);
    expect(msg.length).toBeLessThan(600);
  });
});
