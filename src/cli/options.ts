
/** A configuration value that cannot be used. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_GIE_CONFIG';
  constructor(
    readonly option: string,
    readonly value: string,
    reason: string,
  ) {
    super(`option ${option}: ${JSON.stringify(value)} ${reason}`);
  }
}

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
  /**
   * Query parameters whose values log lines mask, besides `token` and
   * `_xsrf` (always masked, see MASKED_QUERY_PARAMS in log.ts).
   */
  readonly logMaskParams: readonly string[];
  /** How long in-flight HTTP requests may run after SIGTERM before they are cut. */
  readonly shutdownGraceMs: number;
  /** Fallback re-check of the map for filesystems that send no change events (NFS). */
  readonly pollIntervalMs: number;
  /** Quiet period that coalesces a burst of file events into one reload. */
  readonly reloadDebounceMs: number;
  /** A client must send complete request headers within this time or is dropped (408); 0: no limit. */
  readonly headersTimeoutMs: number;
  /** A container must start its response within this time of getting the request, or the client gets 504; 0: no limit. */
  readonly proxyTimeoutMs: number;
  /** Close a WebSocket after this long without traffic in either direction; 0: never. */
  readonly webSocketIdleTimeoutMs: number;
  /** Add X-Forwarded-For/-Port/-Proto/-Host to what goes to the container, appending to what arrived. */
  readonly xfwd: boolean;
  /**
   * Origins (`scheme://host[:port]`) that get CORS headers; null echoes any
   * Origin, as the legacy proxy did.
   */
  readonly corsOrigins: readonly string[] | null;
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
  logMaskParams: [] as readonly string[],
  shutdownGraceMs: 5000,
  pollIntervalMs: 1000,
  reloadDebounceMs: 5,
  // Browsers send their headers in one packet; 30 s is ample for the worst
  // mobile link and bounds how long a slow-headers client holds a socket.
  headersTimeoutMs: 30_000,
  // A container silent for 5 min after a request is hung; a slow notebook
  // save, an export or an RStudio long poll answers well within that.
  proxyTimeoutMs: 300_000,
  webSocketIdleTimeoutMs: 0,
  xfwd: false,
  corsOrigins: null as readonly string[] | null,
  mapThreadFrom: 10_000,
  metricsPort: undefined as number | undefined,
  metricsIp: 'localhost',
  pidFile: undefined as string | undefined,
});

/** The longest delay a Node timer can hold (about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const MS_OPTIONS = ['shutdownGraceMs', 'pollIntervalMs', 'reloadDebounceMs', 'headersTimeoutMs', 'proxyTimeoutMs', 'webSocketIdleTimeoutMs'] as const;

// A query parameter name as it appears before `=` (no separators or blanks).
const QUERY_NAME = /^[^&=?#\s]+$/;

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
  for (const key of MS_OPTIONS) {
    const value = options[key];
    if (!Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) {
      throw new ConfigError(key, String(value), `must be a number of milliseconds from 0 to ${MAX_TIMER_MS}`);
    }
  }
  for (const name of options.logMaskParams) {
    if (typeof name !== 'string' || !QUERY_NAME.test(name)) {
      throw new ConfigError('log-mask-params', String(name), 'is not a query parameter name (no "&", "=", "?", "#" or blanks)');
    }
  }
  const corsOrigins = options.corsOrigins === null ? null : Object.freeze(options.corsOrigins.map(normalizeOrigin));
  return Object.freeze({ ...options, corsOrigins, logMaskParams: Object.freeze([...options.logMaskParams]) });
}

/**
 * An origin as browsers send it in `Origin`: `scheme://host[:port]`, lower
 * case, default port omitted (`https://Galaxy.example.org:443/` becomes
 * `https://galaxy.example.org`). A path, query, credentials or a scheme
 * other than http(s) are refused.
 */
function normalizeOrigin(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username !== '' ||
    url.password !== '' ||
    url.pathname !== '/' ||
    url.search !== '' ||
    url.hash !== '' ||
    value.includes('?') ||
    value.includes('#')
  ) {
    throw new ConfigError('cors-origin', value, 'must be an origin such as https://galaxy.example.org:8080 (http or https, host, optional port)');
  }
  return url.origin;
}

function stripUndefined<T extends object>(input: T): Partial<T> {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<T>;
}
