// The protocol: records of the write log, their framing on disk and on the wire, and the
// channel messages. Pure data and pure functions: it never opens a socket or a file.
export * from './block-codec.ts';
export * from './codec.ts';
export * from './frames.ts';
export * from './messages.ts';
export * from './paths.ts';
export * from './records.ts';
export * from './metadata.ts';
