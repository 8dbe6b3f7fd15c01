/** Programmatic API, for embedding and tests. The CLI is lib/main.js. */
export { startDaemon, type Daemon } from './daemon.js';
export { resolveOptions, DEFAULTS, type ProxyOptions } from './cli/options.js';
export { createLogger, type Logger } from './log.js';
export { ConfigError } from './cli/options.js';
export { ListenError } from './http/server.js';
export { SessionMapError } from './session-map/store.js';
export { PidFileError } from './admin/pid-file.js';
export { VERSION } from './daemon.js';
