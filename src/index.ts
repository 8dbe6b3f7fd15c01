/**
 * Programmatic API, for embedding (the CLI, lib/main.js, is one user of it;
 * the tests are another, through nothing else).
 *
 * - `startDaemon(resolveOptions({...}), createLogger({...}), observer?)` starts
 *   a proxy; the Daemon it resolves with gives its address, `reload()` and
 *   `close()`, and for inspection only its route `table`, Interactive Tools
 *   `entryPoints` and map `reloader` (`readsOnThread`).
 * - ProxyOptions holds options the command line does not offer, for the API
 *   only: `port: 0` (any free port), `mapThreadFrom` (sessions from which the
 *   map is read on a worker thread, 10,000) and `reloadDebounceMs`; the tests
 *   use them to run on free ports and to put small maps on the thread.
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
