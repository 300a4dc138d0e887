import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChannelDialer, ChannelServer, channelOptionsFromConfig, type ChannelDialerOptions, type ChannelServerOptions } from '../../../agent/channel/index.ts';
import { silentLogger } from '../../../shared/log.ts';

const base: ChannelServerOptions = {
  pair: 'demo',
  self: 'alpha',
  peer: 'beta',
  key: crypto.randomBytes(32),
  encryption: 'tls-psk',
  maxFrameBytes: 1_024,
  handshakeTimeoutMs: 1_000,
  log: silentLogger(),
  host: '127.0.0.1',
  port: 0,
};
const dialer: ChannelDialerOptions = { ...base, port: 7_700, reconnectMinMs: 100, reconnectMaxMs: 5_000 };

describe('channel options', () => {
  it('refuses a pair key shorter than 32 bytes at construction', () => {
    expect(() => new ChannelServer({ ...base, key: crypto.randomBytes(16) })).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_KEY_INVALID' }));
    expect(() => new ChannelDialer({ ...dialer, key: crypto.randomBytes(31) })).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_KEY_INVALID' }));
  });

  it.each([
    ['a peer equal to self', { peer: 'alpha' }, 'peer'],
    ['an unknown encryption', { encryption: 'rot13' as 'none' }, 'encryption'],
    ['a zero frame cap', { maxFrameBytes: 0 }, 'maxFrameBytes'],
    ['a name that cannot go in a header', { self: 'al pha\r\n' }, 'self'],
    ['a port out of range', { port: 70_000 }, 'port'],
  ])('refuses %s naming the option', (_what, over, key) => {
    expect(() => new ChannelServer({ ...base, ...over })).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_CONFIG_INVALID', details: { key } }));
  });

  it('refuses a dialer whose maximum delay is below its minimum, or that dials port 0', () => {
    expect(() => new ChannelDialer({ ...dialer, reconnectMaxMs: 50 })).toThrow(expect.objectContaining({ details: { key: 'reconnectMaxMs' } }));
    expect(() => new ChannelDialer({ ...dialer, port: 0 })).toThrow(expect.objectContaining({ details: { key: 'port' } }));
  });

  it('maps the channel keys of tandem.yaml to server and dialer options', () => {
    const key = crypto.randomBytes(32);
    const log = silentLogger();
    const o = channelOptionsFromConfig(
      {
        pair: 'demo',
        self: { name: 'alpha', channel: { host: '10.0.0.1', port: 7700 }, control: { host: '127.0.0.1', port: 7701 } },
        peer: { name: 'beta', channel: { host: '10.0.0.2', port: 7700 }, control: { host: '127.0.0.1', port: 7701 } },
        channel: { encryption: 'tls-psk', windowBatches: 32, windowBytes: 1, bandwidthLimit: 0, compression: 0, maxFrameBytes: 16_777_216, reconnectMin: 100, reconnectMax: 5_000, handshakeTimeout: 5_000 },
      },
      key,
      log,
    );
    expect(o.server).toMatchObject({ pair: 'demo', self: 'alpha', peer: 'beta', host: '10.0.0.1', port: 7700, encryption: 'tls-psk', maxFrameBytes: 16_777_216, handshakeTimeoutMs: 5_000 });
    expect(o.dialer).toMatchObject({ self: 'alpha', peer: 'beta', host: '10.0.0.2', port: 7700, reconnectMinMs: 100, reconnectMaxMs: 5_000 });
    expect(o.server.key).toBe(key);
  });
});
