/** Programmatic API, for embedding and tests. The CLI is lib/main.js. */
export { startDaemon, type Daemon } from './daemon.js';
export { resolveOptions, DEFAULTS, type ProxyOptions } from './options.js';
export { createLogger, type Logger } from './log.js';
export { ConfigError, ListenError, SessionMapError } from './errors.js';
export { VERSION } from './version.js';
