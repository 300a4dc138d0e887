// The tab does the tray icon's job: its title and icon say the pair's health.
import { describe, expect, it } from 'vitest';
import { faviconHref, faviconSvg, HEALTH_COLOURS, pageTitle } from '../../../../console/web/favicon.ts';

describe('favicon and title', () => {
  it('colours the icon by health and puts the health first in the title', () => {
    for (const h of ['ok', 'warn', 'bad'] as const) expect(faviconSvg(h)).toContain(`fill="${HEALTH_COLOURS[h]}"`);
    expect(decodeURIComponent(faviconHref('bad').slice('data:image/svg+xml,'.length))).toBe(faviconSvg('bad'));
    expect(pageTitle('ok', 'alpha serves · beta in sync', 'demo')).toBe('✓ alpha serves · beta in sync — Tandem demo');
    expect(pageTitle('bad', 'NOTHING SERVES', '')).toBe('✗ NOTHING SERVES — Tandem');
  });
});
