// Every problem of a tandem.yaml at once, each with its key and where it is written (line and
// column, from the YAML parser's node ranges), so an operator fixes the file in one pass instead
// of one error per start. Pure: text in, problems out.
import { isMap, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { didYouMean } from '../did-you-mean.ts';

export interface ConfigProblem {
  /** The key, dotted: "journal.maxBytes", "protect.0.path"; "(top level)" for the document. */
  key: string;
  message: string;
  /** 1-based, where the offending value (or unknown key) is written; absent when it is not written at all. */
  line?: number | undefined;
  column?: number | undefined;
}

/** A parsed document and how to find where a key is written in it. */
export class ConfigSource {
  private constructor(
    readonly doc: Document.Parsed | undefined,
    private readonly lines: LineCounter,
  ) {}

  /** Parses YAML text; syntax errors come back as problems (and no document to validate). */
  static parse(text: string): { source: ConfigSource; raw: unknown; problems: ConfigProblem[] } {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
    const problems: ConfigProblem[] = doc.errors.map((e) => ({
      key: '(yaml)',
      message: `not valid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      line: e.linePos?.[0]?.line,
      column: e.linePos?.[0]?.col,
    }));
    const source = new ConfigSource(doc, lines);
    return { source, raw: problems.length > 0 ? undefined : doc.toJS(), problems };
  }

  /** A source without text (a document built in memory): problems carry no position. */
  static none(): ConfigSource {
    return new ConfigSource(undefined, new LineCounter());
  }

  /**
   * Where `path` is written: its value, or with `keyOf` the key itself (an unknown key). A path
   * that is not written points at the nearest written parent.
   */
  locate(path: readonly (string | number)[], keyOf?: string): { line?: number; column?: number } {
    if (this.doc === undefined) return {};
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, n), true);
      if (node === undefined || node === null || typeof node !== 'object' || !('range' in node)) continue;
      let offset = (node as { range?: [number, number, number] | null }).range?.[0];
      if (keyOf !== undefined && n === path.length && isMap(node)) {
        const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === keyOf);
        const keyRange = (pair?.key as { range?: [number, number, number] } | null)?.range;
        if (keyRange !== undefined) offset = keyRange[0];
      }
      if (offset === undefined) continue;
      const pos = this.lines.linePos(offset);
      return { line: pos.line, column: pos.col };
    }
    return {};
  }

  /** `locate` for a dotted key as the cross-key rules name it ("protect.0.path"; a sequence takes "0" as its index). */
  locateKey(key: string): { line?: number; column?: number } {
    return this.locate(key === '(top level)' ? [] : key.split('.'));
  }
}

/** The keys a schema allows at `path` (for "did you mean"), or none when it cannot tell. */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: any = schema;
  const unwrap = () => {
    for (let i = 0; i < 10 && s?._zod?.def?.innerType !== undefined; i++) s = s._zod.def.innerType;
    if (s?._zod?.def?.type === 'pipe') s = s._zod.def.in;
  };
  unwrap();
  for (const p of path) {
    const def = s?._zod?.def;
    if (def?.type === 'object') s = def.shape?.[p as string];
    else if (def?.type === 'array') s = def.element;
    else if (def?.type === 'record') s = def.valueType;
    else return [];
    unwrap();
  }
  return s?._zod?.def?.type === 'object' ? Object.keys(s._zod.def.shape ?? {}) : [];
}

/** Every issue zod found, as problems with positions; an unknown key gets the closest known one. */
export function problemsOfIssues(issues: readonly z.core.$ZodIssue[], source: ConfigSource, schema: z.ZodType): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(schema, issue.path);
      for (const k of issue.keys) {
        const near = didYouMean(k, known);
        out.push({ key: [...path, k].join('.'), message: `unknown key "${k}"${near === undefined ? '' : `; did you mean "${near}"?`}`, ...source.locate(path, k) });
      }
      continue;
    }
    out.push({ key: path.join('.') || '(top level)', message: issue.message, ...source.locate(path) });
  }
  return out;
}

/** "key "journal.maxBytes": expected a size … (line 12, column 14)" */
export function describeProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? '' : ` (line ${p.line}, column ${p.column})`;
  return p.key === '(yaml)' ? `${p.message}${where}` : `key "${p.key}": ${p.message}${where}`;
}
