// A line chart as inline SVG: one line per node, a legend in words, the top value and the
// window's ends as text, and a description for screen readers. The geometry is chart-geometry.ts.
import { chartLines } from './chart-geometry.ts';
import { h, svg } from './dom.ts';
import type { Point } from './figures.ts';

export interface ChartLine {
  label: string;
  points: Point[];
}

const W = 600;
const H = 140;

export function renderChart(el: HTMLElement, title: string, lines: ChartLine[], from: number, to: number, format: (v: number) => string, floor = 1): void {
  const g = chartLines(
    lines.map((l) => l.points),
    from,
    to,
    { width: W, height: H },
    floor,
  );
  const now = lines.map((l, i) => `${l.label} ${g.last[i] === null ? 'no value' : format(g.last[i]!)}`).join(', ');
  const peak = lines.map((l, i) => `${l.label} ${g.max[i] === null ? '-' : format(g.max[i]!)}`).join(', ');
  const minutes = Math.round((to - from) / 60_000);
  const desc = `${title} over the last ${minutes} minutes. Now: ${now}. Highest: ${peak}.`;
  const plot = svg(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': desc, class: 'plot' },
    svg('title', {}, desc),
    svg('line', { x1: 0, y1: H / 2, x2: W, y2: H / 2, class: 'grid' }),
    svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis' }),
    ...g.paths.map((d, i) => svg('path', { d: d === '' ? 'M0 0' : d, class: `line line-${i}`, 'data-series': lines[i]!.label, 'data-points': lines[i]!.points.length })),
  );
  el.replaceChildren(
    h('figcaption', {}, h('span', { class: 'chart-title' }, title), ' ', h('span', { class: 'chart-top' }, `top ${format(g.top)}`)),
    plot,
    h('div', { class: 'chart-foot' }, h('span', {}, `−${minutes} min`), h('span', { class: 'legend' }, ...lines.map((l, i) => h('span', { class: `key key-${i}` }, `${l.label}: ${g.last[i] === null ? '-' : format(g.last[i]!)}`))), h('span', {}, 'now')),
  );
}
