// Replays records into an in-memory tree, and reads a real directory into the same form, so a
// test can say "these records rebuild exactly this tree" without the real applier.
import fs from 'node:fs';
import path from 'node:path';
import type { DataRecord } from '../../shared/protocol/index.ts';

export type ModelNode = { kind: 'file'; data: Buffer; mode: number } | { kind: 'dir'; mode: number } | { kind: 'symlink'; target: string };
export type TreeModel = Map<string, ModelNode>;

export function replay(model: TreeModel, records: DataRecord[]): TreeModel {
  for (const r of records) {
    if (r.op === 'sync-begin' || r.op === 'sync-end') continue;
    const p = r.path;
    const dropTree = (x: string) => {
      for (const k of [...model.keys()]) if (k === x || k.startsWith(`${x}/`)) model.delete(k);
    };
    switch (r.op) {
      case 'mkdir': {
        const cur = model.get(p);
        if (cur?.kind !== 'dir') dropTree(p);
        model.set(p, { kind: 'dir', mode: r.mode });
        break;
      }
      case 'file': {
        const cur = model.get(p);
        const old = cur?.kind === 'file' ? cur.data : Buffer.alloc(0);
        if (cur !== undefined && cur.kind !== 'file') dropTree(p);
        const data = Buffer.alloc(r.size);
        old.copy(data, 0, 0, Math.min(old.length, r.size));
        // Hard links share one node: change it in place, for every name.
        if (cur?.kind === 'file') cur.data = data;
        else model.set(p, { kind: 'file', data, mode: 0o600 });
        break;
      }
      case 'write':
      case 'hole': {
        const cur = model.get(p);
        let data = cur?.kind === 'file' ? cur.data : Buffer.alloc(0);
        const bytes = r.op === 'write' ? Buffer.from(r.data) : Buffer.alloc(r.length);
        const end = r.offset + bytes.length;
        if (end > data.length) {
          const grown = Buffer.alloc(end);
          data.copy(grown);
          data = grown;
        }
        bytes.copy(data, r.offset);
        if (cur?.kind === 'file') cur.data = data;
        else model.set(p, { kind: 'file', data, mode: 0o600 });
        break;
      }
      case 'hardlink': {
        const t = model.get(r.target);
        if (t?.kind !== 'file') break;
        dropTree(p);
        model.set(p, t);
        break;
      }
      case 'meta': {
        const cur = model.get(p);
        if (cur !== undefined && cur.kind !== 'symlink') cur.mode = r.mode;
        break;
      }
      case 'symlink':
        dropTree(p);
        model.set(p, { kind: 'symlink', target: r.target });
        break;
      case 'unlink':
      case 'rmdir':
        dropTree(p);
        break;
      case 'rename': {
        const moved = [...model.entries()].filter(([k]) => k === p || k.startsWith(`${p}/`));
        if (moved.length === 0) break;
        dropTree(r.to);
        dropTree(p);
        for (const [k, v] of moved) model.set(r.to + k.slice(p.length), v);
        break;
      }
    }
  }
  return model;
}

export function readTree(root: string): TreeModel {
  const model: TreeModel = new Map();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      if (st.isSymbolicLink()) model.set(r, { kind: 'symlink', target: fs.readlinkSync(abs) });
      else if (st.isDirectory()) {
        model.set(r, { kind: 'dir', mode: st.mode & 0o7777 });
        walk(r);
      } else if (st.isFile()) model.set(r, { kind: 'file', data: fs.readFileSync(abs), mode: st.mode & 0o7777 });
    }
  };
  walk('');
  return model;
}

/** A readable difference between two trees, '' when they are equal. */
export function diffTrees(want: TreeModel, got: TreeModel): string {
  const out: string[] = [];
  for (const [k, v] of want) {
    const g = got.get(k);
    if (g === undefined) out.push(`missing ${k}`);
    else if (g.kind !== v.kind) out.push(`${k}: ${g.kind} instead of ${v.kind}`);
    else if (v.kind === 'file' && g.kind === 'file' && !v.data.equals(g.data)) out.push(`${k}: content differs (${g.data.length} vs ${v.data.length} bytes)`);
    else if (v.kind === 'symlink' && g.kind === 'symlink' && v.target !== g.target) out.push(`${k}: link target differs`);
    else if (v.kind !== 'symlink' && g.kind !== 'symlink' && v.mode !== g.mode) out.push(`${k}: mode ${g.mode.toString(8)} instead of ${v.mode.toString(8)}`);
  }
  for (const k of got.keys()) if (!want.has(k)) out.push(`extra ${k}`);
  return out.slice(0, 20).join('\n');
}
