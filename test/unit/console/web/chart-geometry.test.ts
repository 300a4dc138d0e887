// Where the chart lines go: scaled into the box under a round top, with a gap wherever a series
// has no value (the channel down), and nothing outside the window.
import { describe, expect, it } from 'vitest';
import { chartLines, niceTop } from '../../../../console/web/chart-geometry.ts';

describe('chart geometry', () => {
  it('rounds the top up to 1, 2, 2.5 or 5 times a power of ten', () => {
    expect([0, 0.3, 1, 1.2, 2.2, 3, 7, 11, 240, 260].map((v) => niceTop(v))).toEqual([1, 1, 1, 2, 2.5, 5, 10, 20, 250, 500]);
    expect(niceTop(100, 1024)).toBe(2000);
  });

  it('scales points into the box, breaks the line at a gap and leaves out what is outside the window', () => {
    const g = chartLines(
      [
        [
          { t: 0, v: 1 },
          { t: 100, v: 2 },
          { t: 200, v: 4 },
          { t: 300, v: null },
          { t: 400, v: 5 },
          { t: 500, v: 3 },
        ],
        [{ t: 1000, v: 9 }],
      ],
      100,
      500,
      { width: 400, height: 100 },
    );
    expect(g.top).toBe(5);
    expect(g.paths[0]).toBe('M0 60 L100 20 M300 0 L400 40');
    expect(g.paths[1]).toBe('');
    expect(g.max).toEqual([5, null]);
    expect(g.last).toEqual([3, null]);
  });
});
