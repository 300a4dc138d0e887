// The browser tab does the tray icon's job: its icon's colour and its title say whether all is
// well, so a tab in the background still tells. Pure.
import type { Health } from './pair-model.ts';

/** The status colours; the page's CSS uses the same (contrast checked by the browser test). */
export const HEALTH_COLOURS: Record<Health, string> = { ok: '#1e7b34', warn: '#a35200', bad: '#b3261e' };
const GLYPHS: Record<Health, string> = { ok: 'M9 16.5l4.5 4.5L23 11.5', warn: 'M16 8v10M16 22.5v1.5', bad: 'M10.5 10.5l11 11M21.5 10.5l-11 11' };
const SYMBOLS: Record<Health, string> = { ok: '✓', warn: '!', bad: '✗' };

export function faviconSvg(health: Health): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="15" fill="${HEALTH_COLOURS[health]}"/><path d="${GLYPHS[health]}" stroke="#fff" stroke-width="3.5" stroke-linecap="round" stroke-linejoin="round" fill="none"/></svg>`;
}

export function faviconHref(health: Health): string {
  return `data:image/svg+xml,${encodeURIComponent(faviconSvg(health))}`;
}

export function pageTitle(health: Health, short: string, pair: string): string {
  return `${SYMBOLS[health]} ${short} — Tandem${pair === '' ? '' : ` ${pair}`}`;
}
