// Where a chart's lines go: points of time series scaled into a box, with a round top value
// and gaps where a series has no value. Pure (strings and numbers), so it is tested in Node;
// chart-view.ts puts the result into an SVG element.
import type { Point } from './figures.ts';

export interface ChartBox {
  width: number;
  height: number;
}

export interface ChartLines {
  /** One SVG path per series ("M x y L x y …"; a gap starts a new "M"); "" when it has no value. */
  paths: string[];
  /** The value at the top of the box (a round number at or above the largest value shown). */
  top: number;
  /** Largest value shown, per series (null: none in the window). */
  max: (number | null)[];
  /** Last value, per series. */
  last: (number | null)[];
}

/** 1, 2, 2.5, 5 times a power of ten, at or above `v` (and at least `floor`). */
export function niceTop(v: number, floor = 1): number {
  const x = Math.max(v, floor);
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

const round = (n: number) => Math.round(n * 10) / 10;

export function chartLines(series: Point[][], from: number, to: number, box: ChartBox, floor = 1): ChartLines {
  const span = Math.max(1, to - from);
  const inWindow = series.map((pts) => pts.filter((p) => p.t >= from && p.t <= to));
  const max = inWindow.map((pts) => pts.reduce<number | null>((m, p) => (p.v === null ? m : m === null ? p.v : Math.max(m, p.v)), null));
  const last = inWindow.map((pts) => {
    for (let i = pts.length - 1; i >= 0; i--) if (pts[i]!.v !== null) return pts[i]!.v;
    return null;
  });
  const top = niceTop(Math.max(0, ...max.map((m) => m ?? 0)), floor);
  const paths = inWindow.map((pts) => {
    const parts: string[] = [];
    let pen = false;
    for (const p of pts) {
      if (p.v === null) {
        pen = false;
        continue;
      }
      const x = round(((p.t - from) / span) * box.width);
      const y = round(box.height - (Math.max(0, Math.min(p.v, top)) / top) * box.height);
      parts.push(`${pen ? 'L' : 'M'}${x} ${y}`);
      pen = true;
    }
    return parts.join(' ');
  });
  return { paths, top, max, last };
}
