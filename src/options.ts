/**
 * The options of the proxy, declared once. Each row of OPTION_TABLE holds an
 * option's default, its kind (the one place its range is checked and a value
 * clamped or normalised) and, when it has one, its flag and `--help` line;
 * the type, DEFAULTS, resolveOptions and the command line (program.ts) are
 * derived from it. The programmatic API and the CLI apply the same rules:
 * a file's poll interval is clamped to 10 ms for both (by the file watch),
 * and only the port rule differs on purpose (the API takes 0, any
 * free port; a flag must name a real one).
 */
import { resolve } from 'node:path';
import { normalizePathPrefix } from './routing/entry-point-router.js';
import { AllowListSyntaxError, TargetAllowList } from './routing/target-allow-list.js';
import { isPostgresUrl } from './session-map/postgres/url.js';
import { resolveSessionsSpec } from './session-map/sqlalchemy-url.js';
import { tcpPort } from './tcp-port.js';

/**
 * A configuration value that cannot be used. `option` is the name the caller
 * used: the property of {@link ProxyOptions} for the programmatic API (the
 * CLI reports flags in commander's words, naming the flag as typed).
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_GIE_CONFIG';
  constructor(
    readonly option: string,
    readonly value: string,
    /** What the value must be, without a final full stop. */
    readonly reason: string,
  ) {
    super(`option ${option}: ${JSON.stringify(value)} ${reason}`);
  }
}

/** Why a value was refused; the caller names the option (API) or the flag (CLI). */
export class Refusal extends Error {
  override readonly name = 'Refusal';
  constructor(
    readonly reason: string,
    /** The part of a list value that was wrong, when not the whole value. */
    readonly culprit?: string,
  ) {
    super(culprit === undefined ? reason : `${JSON.stringify(culprit)} ${reason}`);
  }
}

/**
 * What an option's values are: the one place where a range is checked or a
 * value clamped or normalised, for the programmatic API and the CLI alike.
 */
interface Kind<T> {
  /** Checks a value; returns it normalised (clamped, canonical) or throws Refusal. Idempotent. */
  accept(value: unknown): T;
  /** A flag's text → a value for `accept`; throws Refusal. Absent: the text itself. */
  parse?(text: string): unknown;
  /** Applied by the CLI to the value it ends up with, typed or default (paths are made absolute). */
  onCommandLine?(value: T): T;
  /** How `--help` and the README write a value (a file mode in octal); absent: as it is. */
  show?(value: T): string;
}

/** One row of the option table. */
export interface OptionSpec<T> {
  /** The flag as commander spells it (`--port <n>`); absent: programmatic API only. */
  readonly flag?: string;
  /** The flag's `--help` line. */
  readonly help?: string;
  readonly kind: Kind<T>;
  /** The default of the GIE front door (a front door may override it). */
  readonly default: T;
  /** What `--help` says for a default that is no value (undefined/null), e.g. `off`; absent: nothing. */
  readonly absent?: string;
}

/** The longest delay a Node timer can hold (about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function spec<T>(row: OptionSpec<T>): OptionSpec<T> {
  return row;
}

function text(reason: string): Kind<string> {
  return {
    accept(value) {
      if (typeof value !== 'string' || value.length === 0) throw new Refusal(reason);
      return value;
    },
  };
}

/** A file path; relative paths on the command line are taken from the working directory. */
const path: Kind<string> = { ...text('must be a file path'), onCommandLine: (value) => resolve(value) };

/**
 * The session map: a file path as above, or a database URL as Galaxy's
 * `interactivetoolsproxy_map` holds it (sqlalchemy-url.ts): a SQLite URL
 * becomes the file's absolute path, as Galaxy resolves it; a PostgreSQL URL
 * is kept as it is (checked by the CLI and the store). Any other dialect,
 * or a SQLite URL that names no file, throws SessionsUrlError, not a
 * Refusal: the message must not repeat the value (it may hold a password,
 * which commander would print).
 */
const sessions: Kind<string> = {
  accept(value) {
    if (typeof value !== 'string' || value.length === 0) throw new Refusal('must be a file path or a database URL (sqlite:///… or postgresql://…)');
    return resolveSessionsSpec(value);
  },
  onCommandLine: (value) => (isPostgresUrl(value) ? value : resolve(value)),
};

const host = text('must be a host name or address');

/**
 * The longest unix socket path Linux takes: `sun_path` holds 108 bytes with
 * the final NUL. Node does not refuse a longer one: it binds the path cut
 * short, a file nobody would look for.
 */
const MAX_SOCKET_PATH_BYTES = 107;

/** A unix socket path (the CLI makes it absolute), short enough for `sun_path`. */
const socketFile: Kind<string> = {
  accept(value) {
    const file = path.accept(value);
    if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES) {
      throw new Refusal(`is too long for a unix socket (at most ${MAX_SOCKET_PATH_BYTES} bytes); use a shorter directory such as /run/galaxy`);
    }
    return file;
  },
  onCommandLine: (value) => resolve(value),
};

/** A file mode (permission bits only), written in octal on the command line: `0660`, `660` or `0o660`. */
const fileMode: Kind<number> = {
  accept(value) {
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0o777) throw new Refusal('must be an octal file mode from 0000 to 0777, such as 0660');
    return value as number;
  },
  parse(text) {
    const digits = /^(?:0o)?([0-7]{1,4})$/.exec(text)?.[1];
    if (digits === undefined) throw new Refusal('must be an octal file mode from 0000 to 0777, such as 0660');
    return Number.parseInt(digits, 8);
  },
  show: formatFileMode,
};

/** A file mode as admins write it: `0660`. */
export function formatFileMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

const flag: Kind<boolean> = {
  accept(value) {
    if (typeof value !== 'boolean') throw new Refusal('must be true or false');
    return value;
  },
};

/**
 * A TCP port. The programmatic API also takes 0 (any free port, for tests and
 * embedders who read the bound port back); a flag must name a real port.
 */
const port: Kind<number> = {
  accept(value) {
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) {
      throw new Refusal('must be an integer from 0 to 65535 (0: any free port)');
    }
    return value as number;
  },
  parse(text) {
    const n = tcpPort(text);
    if (n === undefined) throw new Refusal('must be an integer from 1 to 65535');
    return n;
  },
};

function wholeNumber(reason: string, max: number, floor = 0): Kind<number> {
  return {
    accept(value) {
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > max) throw new Refusal(reason);
      return Math.max(value as number, floor);
    },
    parse(text) {
      if (!/^\d+$/.test(text)) throw new Refusal(reason);
      return Number(text);
    },
  };
}

/** Milliseconds that fit a Node timer; values below `floor` count as `floor`. */
function ms(floor = 0): Kind<number> {
  return wholeNumber(`must be a whole number of milliseconds from 0 to ${MAX_TIMER_MS}`, MAX_TIMER_MS, floor);
}

const count = wholeNumber('must be a whole number', Number.MAX_SAFE_INTEGER);

// RFC 6265 cookie-name = token: visible ASCII except separators.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const cookieName: Kind<string> = {
  accept(value) {
    if (typeof value !== 'string' || !COOKIE_NAME.test(value)) throw new Refusal("must be a cookie name: letters, digits and !#$%&'*+-.^_`|~");
    return value;
  },
};

/** A comma-separated flag value as a list: items trimmed, blanks dropped (so `''` is an empty list). */
function commaList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/**
 * Origins as browsers send them in `Origin`: `scheme://host[:port]`, lower
 * case, default port omitted (`https://Galaxy.example.org:443/` becomes
 * `https://galaxy.example.org`). A path, query, credentials or a scheme
 * other than http(s) are refused. On the command line a comma-separated
 * list, blanks dropped, so `''` allows no origin.
 */
const origins: Kind<readonly string[]> = {
  accept(value) {
    if (!Array.isArray(value)) throw new Refusal('must be a list of origins');
    return Object.freeze(value.map(normalizeOrigin));
  },
  parse: commaList,
};

function normalizeOrigin(value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
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
    (value as string).includes('?') ||
    (value as string).includes('#')
  ) {
    throw new Refusal('must be an origin such as https://galaxy.example.org:8080 (http or https, host, optional port)', String(value));
  }
  return url.origin;
}

// A query parameter name as it appears before `=`: no separators or blanks.
const QUERY_NAME = /^[^&=?#\s]+$/;

/**
 * Query parameter names, for log masking. On the command line a
 * comma-separated list, blanks dropped.
 */
const queryNames: Kind<readonly string[]> = {
  accept(value) {
    if (!Array.isArray(value)) throw new Refusal('must be a list of query parameter names');
    for (const name of value) {
      if (typeof name !== 'string' || !QUERY_NAME.test(name)) throw new Refusal('is not a query parameter name (no "&", "=", "?", "#" or blanks)', String(name));
    }
    return Object.freeze([...(value as string[])]);
  },
  parse: commaList,
};

/** `kind`, or no value (undefined/null, whichever `none` is). */
function optional<T, N extends undefined | null>(kind: Kind<T>, none: N): Kind<T | N> {
  return {
    accept: (value) => (value === undefined || value === null ? none : kind.accept(value)),
    ...(kind.parse === undefined ? {} : { parse: kind.parse.bind(kind) }),
    ...(kind.onCommandLine === undefined ? {} : { onCommandLine: (value: T | N) => (value === none ? none : kind.onCommandLine!(value as T)) }),
  };
}

/** `--proxyPathPrefix`: a URL path (RFC 3986 path characters), compared without a trailing `/`. */
const PATH_PREFIX = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;

const pathPrefix: Kind<string | undefined> = {
  accept(value) {
    if (typeof value !== 'string' || !PATH_PREFIX.test(value)) throw new Refusal('must be a URL path such as /interactivetool/ep (no query, no spaces)');
    return normalizePathPrefix(value);
  },
};

/**
 * `--header-mode-allow`: addresses, subnets and host names, each with an
 * optional port (see target-allow-list.ts). On the command line a
 * comma-separated list; from the API a list or a TargetAllowList.
 */
const allowList: Kind<TargetAllowList> = {
  accept(value) {
    if (value instanceof TargetAllowList) return value;
    if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new Refusal('must be a list of addresses, subnets or host names');
    try {
      return TargetAllowList.parse(value);
    } catch (err) {
      if (err instanceof AllowListSyntaxError) throw new Refusal(err.reason, err.item);
      throw err;
    }
  },
  parse: commaList,
};

/** `--galaxy-url`: an http(s) URL without credentials, as the pages' "back to Galaxy" link. */
const galaxyUrl: Kind<string> = {
  accept(value) {
    let url: URL | undefined;
    try {
      url = typeof value === 'string' ? new URL(value) : undefined;
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') {
      throw new Refusal('must be an http or https URL such as https://galaxy.example.org/ (no user or password)');
    }
    return url.href;
  },
};

/**
 * The option table: every option of {@link ProxyOptions}, in `--help` order.
 * From it come the type, the defaults, the checks of the programmatic API
 * and the command line with its `--help` (src/cli/program.ts). A row without
 * `flag` is programmatic API only, public and documented here.
 */
export const OPTION_TABLE = {
  /** Address to listen on. */
  ip: spec({ flag: '--ip <n>', help: 'Public-facing IP of the proxy', kind: host, default: 'localhost' }),
  /** Port to listen on; 0 picks a free port (programmatic API only). */
  port: spec({ flag: '--port <n>', help: 'Public-facing port of the proxy', kind: port, default: 8000 }),
  /**
   * Unix socket to listen on instead of `ip`/`port` (a front server on the
   * same host reaches it; file permissions say who else can). The CLI makes
   * it absolute. Undefined: listen on `ip`/`port`.
   */
  socketPath: spec({
    flag: '--socket <path>',
    help: 'Listen on this unix socket instead of --ip/--port (for nginx or Apache on the same host)',
    kind: optional(socketFile, undefined),
    default: undefined,
    absent: 'off',
  }),
  /** Permission bits given to the socket file once it is bound, before the proxy says it is listening. */
  socketMode: spec({ flag: '--socket-mode <mode>', help: 'File mode of the --socket file (octal)', kind: fileMode, default: 0o660 }),
  /** Name of the cookie whose value keys the session map. */
  cookieName: spec({ flag: '--cookie <cookiename>', help: 'Cookie proving authentication', kind: cookieName, default: 'galaxysession' }),
  /**
   * Path of the session map; the CLI makes it absolute, the API takes it as
   * given. Undefined (the gx-it-proxy command's default): no map, Interactive
   * Tools header mode.
   */
  sessionsPath: spec<string | undefined>({
    flag: '--sessions <file>',
    help: 'Routes file to monitor (SQLite or JSON), or a database URL as galaxy.yml has it (sqlite:///…, postgresql://…)',
    kind: optional<string, undefined>(sessions, undefined),
    default: 'database/session_map.sqlite',
    absent: 'none: header mode',
  }),
  /** Rewrite `Location: http://localhost/...` on 302s to include our port. */
  reverseProxy: spec({ flag: '--reverseProxy', help: 'Rewrite redirects to http://localhost/ to carry the proxy port', kind: flag, default: false }),
  /** Log one line per proxied request. */
  verbose: spec({ flag: '--verbose', help: 'Log every proxied request', kind: flag, default: false }),
  /**
   * Query parameters whose values log lines mask, besides `token` and `_xsrf`
   * (always masked: MASKED_QUERY_PARAMS in log.ts); undefined: only those.
   */
  logMaskParams: spec({
    flag: '--log-mask-params <names>',
    help: 'Mask the values of these comma-separated query parameters in log lines, besides token and _xsrf',
    kind: optional(queryNames, undefined),
    default: undefined,
    absent: 'none',
  }),
  /** Interactive Tools: route `<prefix>/<key>/<token>/…` by path before the Host; normalised (no trailing `/`). Undefined: by Host only. */
  pathPrefix: spec({
    flag: '--proxyPathPrefix <path>',
    help: 'Interactive Tools: route <path>/<key>/<token>/... by path, before the Host',
    kind: optional(pathPrefix, undefined),
    default: undefined,
  }),
  /** Interactive Tools forward mode: send every request to this address, the entry point's host in `x-interactive-tool-host`. */
  forwardIP: spec({
    flag: '--forwardIP <n>',
    help: 'Interactive Tools: send every request to this address, the container in x-interactive-tool-host',
    kind: optional(host, undefined),
    default: undefined,
  }),
  /** Interactive Tools forward mode: send every request to this port, the entry point's port in `x-interactive-tool-port`. */
  forwardPort: spec({
    flag: '--forwardPort <n>',
    help: 'Interactive Tools: send every request to this port, the container in x-interactive-tool-port',
    kind: optional(port, undefined),
    default: undefined,
  }),
  /** Header mode (no map): the only targets it connects to; undefined: any (an open relay, warned about at start). */
  headerModeAllow: spec({
    flag: '--header-mode-allow <targets>',
    help: 'Header mode: only connect to these comma-separated addresses, subnets or names, each with an optional :port',
    kind: optional(allowList, undefined),
    default: undefined,
    absent: 'any target',
  }),
  /**
   * Route Interactive Tools until the map says what it holds (no flag: the
   * gx-it-proxy command sets it; `--proxyPathPrefix`, `--forwardIP` and
   * `--forwardPort` imply it).
   */
  interactiveTools: spec({ kind: flag, default: false }),
  /** How long in-flight HTTP requests may run after SIGTERM before they are cut. */
  shutdownGraceMs: spec({ flag: '--shutdown-grace <ms>', help: 'How long in-flight requests may finish after SIGTERM', kind: ms(), default: 5000 }),
  /**
   * Fallback re-check of the map for filesystems that send no change events
   * (NFS). For a file, values below 10 ms count as 10 ms (the file watch
   * clamps it: 0 would re-read the map in a busy loop). For a PostgreSQL map
   * a one-row query this often; 0 turns the poll off (LISTEN only), and the
   * CLI's default there is 5000 (gx-it-proxy's).
   */
  pollIntervalMs: spec({
    flag: '--poll-interval <ms>',
    help: 'Re-check the map this often even without file events (NFS); PostgreSQL: default 5000, 0: LISTEN only',
    kind: ms(),
    default: 1000,
  }),
  /** Quiet period that coalesces a burst of file events into one reload (no flag: a tuning knob). */
  reloadDebounceMs: spec({ kind: ms(), default: 5 }),
  /**
   * A client must send complete request headers within this time or is
   * dropped (408); 0: no limit. Browsers send their headers in one packet;
   * 30 s is ample for the worst mobile link and bounds how long a
   * slow-headers client holds a socket.
   */
  headersTimeoutMs: spec({
    flag: '--headers-timeout <ms>',
    help: 'Drop a client whose request headers are not complete within this time (0: no limit)',
    kind: ms(),
    default: 30_000,
  }),
  /**
   * A container must start its response within this time of getting the
   * request, or the client gets 504; 0: no limit. A container silent for
   * 5 min after a request is hung; a slow notebook save, an export or an
   * RStudio long poll answers well within that.
   */
  proxyTimeoutMs: spec({
    flag: '--proxy-timeout <ms>',
    help: 'Answer 504 when a container has not started its response this long after the request (0: no limit)',
    kind: ms(),
    default: 300_000,
  }),
  /** Close a WebSocket after this long without traffic in either direction; 0: never. */
  webSocketIdleTimeoutMs: spec({ flag: '--ws-idle-timeout <ms>', help: 'Close a WebSocket with no traffic either way for this long (0: never)', kind: ms(), default: 0 }),
  /** Add X-Forwarded-For/-Port/-Proto/-Host to what goes to the container, appending to what arrived. */
  xfwd: spec({ flag: '--xfwd', help: 'Add X-Forwarded-For/-Port/-Proto/-Host headers for the container', kind: flag, default: false }),
  /** Origins (`scheme://host[:port]`) that get CORS headers, normalised; null echoes any Origin, as the legacy proxy did. */
  corsOrigins: spec({
    flag: '--cors-origin <origins>',
    help: 'Only these comma-separated origins get CORS headers',
    kind: optional(origins, null),
    default: null,
    absent: 'echo any Origin',
  }),
  /** The "back to Galaxy" link of the browser pages; undefined: derived from the request (see src/pages/galaxy-link.ts). */
  galaxyUrl: spec({
    flag: '--galaxy-url <url>',
    help: "Browser pages: where the 'back to Galaxy' link goes",
    kind: optional(galaxyUrl, undefined),
    default: undefined,
    absent: 'derived from the request',
  }),
  /** A directory of `starting.html`, `stopped.html`, `unreachable.html` for the browser pages; the CLI makes it absolute. */
  errorPagesDir: spec({
    flag: '--error-pages <dir>',
    help: 'Browser pages: templates starting.html, stopped.html, unreachable.html in this directory',
    kind: optional(path, undefined),
    default: undefined,
    absent: 'built-in pages',
  }),
  /** How long the starting page retries the tool before it says the tool could not be reached. */
  startingPageTimeoutMs: spec({
    flag: '--starting-page-timeout <ms>',
    help: 'Browser pages: how long the starting page waits for the tool before giving up',
    kind: ms(1000),
    default: 600_000,
  }),
  /** Port of the separate `/health` and `/metrics` listener; undefined: no such listener. */
  metricsPort: spec({ flag: '--metrics-port <n>', help: 'Serve /health and /metrics on this port', kind: optional(port, undefined), default: undefined, absent: 'off' }),
  /** Address of the metrics listener. */
  metricsIp: spec({ flag: '--metrics-ip <n>', help: 'Address of the metrics listener', kind: host, default: 'localhost' }),
  /** How long without traffic makes a session or entry point count in the `gie_proxy_routes_idle` gauge. */
  idleReportAfterMs: spec({
    flag: '--idle-report-after <ms>',
    help: 'Count a session or entry point as idle in /metrics after this long without traffic',
    kind: ms(1000),
    default: 3_600_000,
  }),
  /** File that holds the process id while the CLI runs; the CLI makes it absolute. Undefined: none. */
  pidFile: spec({ flag: '--pid-file <path>', help: 'Write the process id to this file while running', kind: optional(path, undefined), default: undefined }),
};

/**
 * Flags of the command line that are not proxy options: they choose what the
 * CLI does instead of configuring the proxy. Listed in `--help` after
 * OPTION_TABLE.
 */
export const CLI_ONLY_TABLE = {
  /** gx-it-proxy's spelling of `--poll-interval`; given, it sets pollIntervalMs. */
  pollingInterval: spec({ flag: '--pollingInterval <ms>', help: "gx-it-proxy's spelling of --poll-interval", kind: optional(ms(), undefined), default: undefined }),
  /** Read the map once, report and exit instead of serving. */
  check: spec({ flag: '--check', help: 'Read the session map once, report what it holds and exit (0: readable, 1: not)', kind: flag, default: false }),
  /** How many of the newest sessions `--check` tries to connect to. */
  checkLimit: spec({ flag: '--check-limit <n>', help: 'How many of the newest sessions --check tries a TCP connect to', kind: count, default: 10 }),
  /** Install the PostgreSQL change trigger and counter (an admin step), report and exit. */
  installTrigger: spec({
    flag: '--install-trigger',
    help: 'PostgreSQL map: install the change trigger and counter (an admin step), report and exit',
    kind: flag,
    default: false,
  }),
};

type ValuesOf<Table> = { readonly [K in keyof Table]: Table[K] extends OptionSpec<infer T> ? T : never };

/**
 * Everything the proxy needs to run, already validated (see OPTION_TABLE for
 * each option). The core never sees a flag name: the CLI turns flags into
 * this shape, embedders and tests build it with resolveOptions.
 */
export type ProxyOptions = ValuesOf<typeof OPTION_TABLE>;

/** The CLI-only flags' values (see CLI_ONLY_TABLE). */
export type CliOnlyOptions = ValuesOf<typeof CLI_ONLY_TABLE>;

/** Every key of either table. */
export type OptionKey = keyof ProxyOptions | keyof CliOnlyOptions;

function defaultsOf<Table extends Record<string, OptionSpec<unknown>>>(table: Table): ValuesOf<Table> {
  return Object.freeze(Object.fromEntries(Object.entries(table).map(([key, row]) => [key, row.default]))) as ValuesOf<Table>;
}

/** The GIE defaults of every proxy option. */
export const DEFAULTS: ProxyOptions = defaultsOf(OPTION_TABLE);

/** The defaults of the CLI-only flags. */
export const CLI_ONLY_DEFAULTS: CliOnlyOptions = defaultsOf(CLI_ONLY_TABLE);

/**
 * Fills in defaults, checks (and clamps or normalises) every value with the
 * option table's rules and returns a frozen object. Throws ConfigError naming
 * the option as given (`cookieName`, `corsOrigins`…) and the value that was
 * wrong, also for a key that is not an option.
 */
export function resolveOptions(input: Partial<ProxyOptions> & { sessionsPath: string | undefined }): ProxyOptions {
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(OPTION_TABLE, key)) throw new ConfigError(key, String((input as Record<string, unknown>)[key]), 'is not an option');
  }
  const resolved: Record<string, unknown> = {};
  for (const [key, row] of Object.entries(OPTION_TABLE) as Array<[keyof ProxyOptions, OptionSpec<unknown>]>) {
    // `sessionsPath` is always given: undefined there means no map (header mode), not the default.
    const value = input[key] === undefined && key !== 'sessionsPath' ? row.default : input[key];
    resolved[key] = acceptAs(key, row, value);
  }
  return Object.freeze(resolved) as ProxyOptions;
}

/** `row.kind.accept(value)`, a refusal turned into ConfigError naming `key`. */
export function acceptAs<T>(key: string, row: OptionSpec<T>, value: unknown): T {
  try {
    return row.kind.accept(value);
  } catch (err) {
    if (err instanceof Refusal) throw new ConfigError(key, err.culprit ?? String(value), err.reason);
    throw err;
  }
}
