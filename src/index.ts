/**
 * Programmatic API, for embedding (the CLI, lib/main.js, is one user of it;
 * the tests are another, through nothing else).
 *
 * - `startDaemon(resolveOptions({...}), createLogger({...}), observer?)` starts
 *   a proxy; the Daemon it resolves with gives its address, `reload()` and
 *   `close()`, and for inspection only its route `table`, Interactive Tools
 *   `entryPoints` and map `reloader`.
 * - ProxyOptions holds options the command line does not offer, for the API
 *   only: `port: 0` (any free port) and `reloadDebounceMs`; the tests use
 *   them to run on free ports and to fold bursts of changes quickly.
 * - The observer (ProxyObserver) gets every request, reload
 *   and WebSocket report; `/metrics` is built on the same hooks.
 * - Errors are Error subclasses with a `code`: ConfigError, ListenError,
 *   SessionMapError, PidFileError.
 */
export { startDaemon, type Daemon, type DaemonHooks } from './daemon.js';
export { resolveOptions, DEFAULTS, type ProxyOptions } from './options.js';
export { createLogger, type Logger } from './log.js';
export { ConfigError } from './options.js';
export { ListenError } from './http/server.js';
export { SessionMapError } from './session-map/store.js';
export { PidFileError } from './admin/pid-file.js';
export { VERSION } from './daemon.js';
export type { ProxyObserver } from './observer.js';
