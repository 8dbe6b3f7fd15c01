import { ConfigError } from './errors.js';

/**
 * Everything the proxy needs to run, already validated. The core never sees a
 * flag name: the CLI turns flags into this shape, tests build it directly.
 */
export interface ProxyOptions {
  /** Address to listen on (legacy `--ip`). */
  readonly ip: string;
  /** Port to listen on (legacy `--port`); 0 picks a free port (tests only). */
  readonly port: number;
  /** Name of the cookie whose value keys the session map (legacy `--cookie`). */
  readonly cookieName: string;
  /** Path of the session map (legacy `--sessions`), absolute. */
  readonly sessionsPath: string;
  /** Rewrite `Location: http://localhost/...` on 302s to include our port. */
  readonly reverseProxy: boolean;
  /** Log one line per proxied request. */
  readonly verbose: boolean;
  /** How long in-flight HTTP requests may run after SIGTERM before they are cut. */
  readonly shutdownGraceMs: number;
  /** Fallback re-check of the map for filesystems that send no change events (NFS). */
  readonly pollIntervalMs: number;
  /** Quiet period that coalesces a burst of file events into one reload. */
  readonly reloadDebounceMs: number;
  /** Session count from which the map is read on a worker thread (no CLI flag: a tuning knob for tests). */
  readonly mapThreadFrom: number;
  /** Port of the separate `/health` and `/metrics` listener; undefined: no such listener. */
  readonly metricsPort: number | undefined;
  /** Address of the metrics listener. */
  readonly metricsIp: string;
  /** File that holds the process id while the CLI runs, absolute; undefined: none. */
  readonly pidFile: string | undefined;
}

export const DEFAULTS = Object.freeze({
  ip: 'localhost',
  port: 8000,
  cookieName: 'galaxysession',
  sessionsPath: 'database/session_map.sqlite',
  reverseProxy: false,
  verbose: false,
  shutdownGraceMs: 5000,
  pollIntervalMs: 1000,
  reloadDebounceMs: 5,
  mapThreadFrom: 10_000,
  metricsPort: undefined as number | undefined,
  metricsIp: 'localhost',
  pidFile: undefined as string | undefined,
});

// RFC 6265 cookie-name = token: visible ASCII except separators.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Fills in defaults, checks every value once and returns a frozen object.
 * Throws ConfigError naming the option and the value that was wrong.
 */
export function resolveOptions(input: Partial<ProxyOptions> & { sessionsPath: string }): ProxyOptions {
  const options: ProxyOptions = { ...DEFAULTS, ...stripUndefined(input) };
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new ConfigError('port', String(options.port), 'must be an integer from 1 to 65535');
  }
  if (typeof options.ip !== 'string' || options.ip.length === 0) {
    throw new ConfigError('ip', String(options.ip), 'must be a host name or address');
  }
  if (!COOKIE_NAME.test(options.cookieName)) {
    throw new ConfigError('cookie', options.cookieName, 'is not a valid cookie name');
  }
  if (typeof options.sessionsPath !== 'string' || options.sessionsPath.length === 0) {
    throw new ConfigError('sessions', String(options.sessionsPath), 'must be a file path');
  }
  if (!Number.isInteger(options.mapThreadFrom) || options.mapThreadFrom < 0) {
    throw new ConfigError('mapThreadFrom', String(options.mapThreadFrom), 'must be a non-negative number of sessions');
  }
  if (options.metricsPort !== undefined && (!Number.isInteger(options.metricsPort) || options.metricsPort < 0 || options.metricsPort > 65535)) {
    throw new ConfigError('metrics-port', String(options.metricsPort), 'must be an integer from 1 to 65535');
  }
  if (typeof options.metricsIp !== 'string' || options.metricsIp.length === 0) {
    throw new ConfigError('metrics-ip', String(options.metricsIp), 'must be a host name or address');
  }
  if (options.pidFile !== undefined && (typeof options.pidFile !== 'string' || options.pidFile.length === 0)) {
    throw new ConfigError('pid-file', String(options.pidFile), 'must be a file path');
  }
  for (const key of ['shutdownGraceMs', 'pollIntervalMs', 'reloadDebounceMs'] as const) {
    const value = options[key];
    if (!Number.isFinite(value) || value < 0) {
      throw new ConfigError(key, String(value), 'must be a non-negative number of milliseconds');
    }
  }
  return Object.freeze(options);
}

function stripUndefined<T extends object>(input: T): Partial<T> {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<T>;
}
