// The channel: one authenticated (and by default TLS-PSK encrypted) WebSocket between the two
// agents of a pair, carrying validated protocol Messages. It must never act on a byte before
// the peer proved it holds the pair key, never own replication state, never buffer without
// bound, and never let a bad frame or a dead socket throw out of a callback.
export { ChannelServer } from './channel-server.ts';
export type { ChannelServerEvents } from './channel-server.ts';
export { ChannelDialer } from './channel-dialer.ts';
export { PeerChannel } from './peer-channel.ts';
export type { PeerChannelEvents } from './peer-channel.ts';
export type { ChannelDialerEvents } from './channel-dialer.ts';
export { PeerConnection, CLOSE_GRACE_MS } from './peer-connection.ts';
export type { ChannelDirection, ChannelStats, PeerConnectionEvents } from './peer-connection.ts';
export type { ChannelCloseInfo } from './close-reason.ts';
export { channelOptionsFromConfig } from './channel-options.ts';
export type { ChannelEncryption, ChannelOptions, ChannelServerOptions, ChannelDialerOptions } from './channel-options.ts';
export { TLS_PSK_CIPHERS } from './tls-psk.ts';
