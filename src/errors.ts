/**
 * Error classes with a stable `name` and `code`, so callers and log readers
 * can tell failures apart without parsing messages.
 */

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

/** Why a session map could not be read. `waiting` kinds are normal at start-up. */
export type SessionMapFailure =
  | 'missing' // the file does not exist (yet)
  | 'no-table' // the database exists but Galaxy has not created its table yet
  | 'busy' // a writer held a lock longer than our busy timeout
  | 'incomplete' // an empty or half-written JSON file (Galaxy rewrites it in place)
  | 'corrupt' // not a database / wrong shape
  | 'unreadable'; // permissions or I/O error

/** A session map read that failed; the last good map stays in use. */
export class SessionMapError extends Error {
  override readonly name = 'SessionMapError';
  readonly code = 'ERR_GIE_SESSION_MAP';
  constructor(
    readonly failure: SessionMapFailure,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** True for the states Galaxy's start-up race goes through. */
  get isWaiting(): boolean {
    return this.failure === 'missing' || this.failure === 'no-table' || this.failure === 'incomplete';
  }
}

/** The listening socket could not be opened. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  readonly code = 'ERR_GIE_LISTEN';
  constructor(
    readonly address: string,
    options: { cause: NodeJS.ErrnoException },
  ) {
    super(`cannot listen on ${address}: ${describeListenFailure(options.cause)}`, options);
  }
}

/** The pid file could not be written. */
export class PidFileError extends Error {
  override readonly name = 'PidFileError';
  readonly code = 'ERR_GIE_PID_FILE';
  constructor(
    readonly path: string,
    options: { cause: NodeJS.ErrnoException },
  ) {
    super(`cannot write the pid file ${path}: ${options.cause.code ?? options.cause.message} (check that its directory exists and is writable)`, options);
  }
}

function describeListenFailure(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use (is another proxy running?)';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges)';
    case 'EADDRNOTAVAIL':
      return 'address not available on this machine (check --ip)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name does not resolve (check --ip)';
    default:
      return err.message;
  }
}

/** A container did not start its answer within `--proxy-timeout`; the client gets 504. */
export class ProxyTimeoutError extends Error {
  override readonly name = 'ProxyTimeoutError';
  readonly code = 'ERR_GIE_PROXY_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`the container sent no response within ${timeoutMs} ms`);
  }
}

/** Network error codes that mean "the container is not there": logged without a stack. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Container time-outs. */
const TIMED_OUT = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ERR_GIE_PROXY_TIMEOUT']);

/**
 * The one place that turns an upstream failure into the status the client
 * gets: 504 for a container that did not answer in time, 502 for everything
 * else that went wrong talking to it.
 */
export function statusForProxyError(err: NodeJS.ErrnoException): 502 | 504 {
  return err.code !== undefined && TIMED_OUT.has(err.code) ? 504 : 502;
}

/** True for a container that did not answer in time (as opposed to one that is not there). */
export function isProxyTimeout(err: NodeJS.ErrnoException): boolean {
  return err.code !== undefined && TIMED_OUT.has(err.code);
}

/**
 * The status for a request Node's HTTP parser rejected (server 'clientError'):
 * 408 when its headers did not arrive within `--headers-timeout`, 431 for
 * over-large headers, 400 otherwise. (Errors in a body come after the
 * request was routed; that connection is just closed.)
 */
export function statusForClientError(code: string | undefined): 400 | 408 | 431 {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    default:
      return 400;
  }
}

/** Known network failures are expected in operation; anything else is a bug worth a stack. */
export function isKnownNetworkError(err: NodeJS.ErrnoException): boolean {
  return err.code !== undefined && (UNREACHABLE.has(err.code) || TIMED_OUT.has(err.code));
}
