// The event list: both nodes' events merged once each, in time order, and narrowed by node,
// kind, trigger and words.
import { describe, expect, it } from 'vitest';
import type { TandemEvent } from '../../../../agent/events/event.ts';
import { changeText, filterEvents, mergeEvents } from '../../../../console/web/event-filter.ts';

const e = (node: string, seq: number, time: number, p: Partial<TandemEvent> = {}): TandemEvent => ({ seq, time, node, kind: 'state', from: 'a', to: 'b', reason: 'why', trigger: 'automatic', details: {}, ...p });
const ANY = { node: '', kind: '', trigger: '', text: '' };

describe('event list', () => {
  it('merges both nodes\' events once each, in time order, keeping the newest', () => {
    const a = [e('alpha', 1, 10), e('alpha', 2, 30)];
    const merged = mergeEvents(a, [e('beta', 1, 20), e('alpha', 2, 30), e('beta', 2, 40)]);
    expect(merged.map((x) => `${x.node}${x.seq}`)).toEqual(['alpha1', 'beta1', 'alpha2', 'beta2']);
    expect(mergeEvents(merged, [e('beta', 3, 50)], 3).map((x) => `${x.node}${x.seq}`)).toEqual(['alpha2', 'beta2', 'beta3']);
  });

  it('filters by node, kind, trigger and every word, newest first', () => {
    const list = [
      e('alpha', 1, 1, { kind: 'role', from: 'active', to: 'passive', trigger: 'operator', reason: 'operator asked for a switchover' }),
      e('beta', 1, 2, { kind: 'failover', from: 'alpha', to: 'beta', details: { phase: 'done' }, reason: 'failover: the active is gone' }),
      e('beta', 2, 3, { kind: 'link', from: 'up', to: 'down', details: { link: 'channel' } }),
    ];
    expect(filterEvents(list, ANY).map((x) => x.time)).toEqual([3, 2, 1]);
    expect(filterEvents(list, { ...ANY, node: 'beta' }).map((x) => x.time)).toEqual([3, 2]);
    expect(filterEvents(list, { ...ANY, kind: 'failover' }).map((x) => x.time)).toEqual([2]);
    expect(filterEvents(list, { ...ANY, trigger: 'operator' }).map((x) => x.time)).toEqual([1]);
    expect(filterEvents(list, { ...ANY, text: 'SWITCHOVER operator' }).map((x) => x.time)).toEqual([1]);
    expect(filterEvents(list, { ...ANY, text: 'channel down' }).map((x) => x.time)).toEqual([3]);
    expect(filterEvents(list, ANY, 1).map((x) => x.time)).toEqual([3]);
  });

  it('says what changed in a few words', () => {
    expect(changeText(e('beta', 1, 1, { kind: 'failover', from: 'alpha', to: 'beta', details: { phase: 'done' } }))).toBe('alpha → beta (done)');
    expect(changeText(e('beta', 1, 1, { kind: 'link', from: 'up', to: 'down', details: { link: 'channel' } }))).toBe('channel: up → down');
    expect(changeText(e('beta', 1, 1, { kind: 'alarm', from: 'clear', to: 'raised', details: { code: 'TANDEM_ERR_X' } }))).toBe('TANDEM_ERR_X: clear → raised');
    expect(changeText(e('beta', 1, 1, { kind: 'token', from: null, to: null }))).toBe('');
  });
});
