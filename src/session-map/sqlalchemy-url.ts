import { isAbsolute, resolve } from 'node:path';

/**
 * `--sessions` as Galaxy and gravity hand it over: gravity passes Galaxy's
 * raw `interactivetoolsproxy_map` (a SQLAlchemy database URL since Galaxy
 * 24.2) or `interactivetools_map` (a path). This module reads a SQLAlchemy
 * URL the way SQLAlchemy 2's `make_url` does, and turns the SQLite forms into
 * the file path Galaxy itself opens; PostgreSQL URLs go to postgres/url.ts;
 * any other dialect is refused by name. Nothing here ever repeats the value:
 * a URL may hold a password.
 */

/** A `--sessions` value that names no usable map; the message never holds the value. */
export class SessionsUrlError extends Error {
  override readonly name: string = 'SessionsUrlError';
  readonly code: string = 'ERR_GIE_SESSIONS_URL';
}

/** A SQLAlchemy URL's parts, decoded as SQLAlchemy decodes them. */
export interface SqlalchemyUrl {
  /** The dialect, lower case: `postgresql`, `sqlite`, `mysql`… */
  readonly dialect: string;
  /** The driver after `+`, lower case, or undefined. */
  readonly driver: string | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** As written (SQLAlchemy does not decode it); an IPv6 address without its brackets. */
  readonly host: string | undefined;
  /** As written: SQLAlchemy takes it as an integer, so digits only (checked by the caller). */
  readonly port: string | undefined;
  readonly database: string | undefined;
  /** Query arguments in order, each decoded (`+` is a space); a name may repeat. */
  readonly query: ReadonlyArray<readonly [string, string]>;
}

/** What may start a URL: SQLAlchemy's `name://`, with `name` word characters and `+`. */
const URL_START = /^[A-Za-z0-9_+]+:\/\//;

/**
 * SQLAlchemy's own URL pattern (`sqlalchemy.engine.url._parse_url`): the user
 * name runs to the last `@` unless a `:` starts a password, which runs to the
 * first `@`; a host may be an IPv6 address in brackets; the database runs to
 * the first `?`.
 */
const SQLALCHEMY_URL =
  /^([\w+]+):\/\/(?:([^:/]*)(?::([^@]*))?@)?(?:(?:\[([^/?]+)\]|([^/:?]+))?(?::([^/?]*))?)?(?:\/([^?]*))?(?:\?(.*))?$/s;

/** True when `value` is written as a URL (`name://…`) rather than a file path. */
function looksLikeUrl(value: string): boolean {
  return URL_START.test(value);
}

/** Percent-decoding as Python's `unquote`: a malformed escape stays as written. */
function unquote(text: string): string {
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/** `parse_qsl`: `&`-separated `name=value` pairs, `+` as a space, percent-decoded; pairs without `=` are dropped. */
function parseQuery(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const part of text.split('&')) {
    const eq = part.indexOf('=');
    if (part === '' || eq < 0) continue;
    const decode = (s: string): string => unquote(s.replace(/\+/g, ' '));
    pairs.push([decode(part.slice(0, eq)), decode(part.slice(eq + 1))]);
  }
  return pairs;
}

/**
 * Parses a SQLAlchemy URL; undefined when `value` does not start like one
 * (a file path). Throws SessionsUrlError for a URL SQLAlchemy cannot parse.
 */
export function parseSqlalchemyUrl(value: string): SqlalchemyUrl | undefined {
  if (!looksLikeUrl(value)) return undefined;
  const m = SQLALCHEMY_URL.exec(value);
  if (m === null) throw new SessionsUrlError('--sessions: not a database URL SQLAlchemy can read (dialect://user:password@host:port/database?arguments)');
  const [, name, username, password, ipv6, ipv4, port, database, query] = m;
  const [dialect, driver] = (name).toLowerCase().split('+', 2) as [string, string | undefined];
  return {
    dialect,
    driver: driver === '' ? undefined : driver,
    username: username === undefined ? undefined : unquote(username),
    password: password === undefined ? undefined : unquote(password),
    host: ipv4 ?? ipv6,
    port,
    database: database === undefined ? undefined : unquote(database),
    query: query === undefined ? [] : parseQuery(query),
  };
}

/** The dialects the map can be in. */
const SUPPORTED = 'SQLite (sqlite:///relative/path, sqlite:////absolute/path, or a file path), a JSON file, or PostgreSQL (postgresql://…)';

/** True for SQLAlchemy's PostgreSQL dialect names (`postgres` is its old alias, still read by libpq). */
export function isPostgresDialect(dialect: string): boolean {
  return dialect === 'postgresql' || dialect === 'postgres';
}

/**
 * What `--sessions` names, made plain: a file path (absolute when `value` is
 * a SQLite URL, resolved against `cwd` as Galaxy resolves it; a path given
 * as a path is returned as it is), or the PostgreSQL URL as given (read by
 * postgres/url.ts). Throws SessionsUrlError for another dialect, an
 * in-memory SQLite database, or a SQLite URL with a host or credentials;
 * the message names the dialect, never the value.
 */
export function resolveSessionsSpec(value: string, cwd: string = process.cwd()): string {
  const url = parseSqlalchemyUrl(value);
  if (url === undefined) return value;
  if (isPostgresDialect(url.dialect)) return value;
  if (url.dialect === 'sqlite') return sqlitePath(url, cwd);
  const name = url.driver === undefined ? url.dialect : `${url.dialect}+${url.driver}`;
  throw new SessionsUrlError(`--sessions: the ${JSON.stringify(name)} dialect (${url.dialect}://) is not supported for the map: it can be ${SUPPORTED}`);
}

/** Query arguments pysqlite takes for itself (SQLAlchemy's list); the rest go to SQLite with `uri=true`. */
const PYSQLITE_ARGS = new Set(['uri', 'timeout', 'isolation_level', 'detect_types', 'check_same_thread', 'cached_statements']);

/**
 * The file a `sqlite://` URL opens, as SQLAlchemy's pysqlite dialect has it:
 * `sqlite:///relative/path` (from the working directory),
 * `sqlite:////absolute/path`, and with `uri=true` a SQLite URI filename
 * (`sqlite:///file:path?mode=ro&uri=true`) whose path is taken; the map is
 * always opened read-only whatever `mode` says.
 */
function sqlitePath(url: SqlalchemyUrl, cwd: string): string {
  if (url.username !== undefined || url.password !== undefined || url.host !== undefined || url.port !== undefined) {
    throw new SessionsUrlError(
      '--sessions: a sqlite:// URL names a file, never a host or a user: sqlite:///relative/path (from the working directory) or sqlite:////absolute/path (four slashes)',
    );
  }
  const database = url.database ?? '';
  const uri = url.query.some(([name, value]) => name === 'uri' && /^(?:true|1|yes|on)$/i.test(value));
  if (uri) return resolve(cwd, sqliteUriPath(database, url.query));
  if (database === '' || database === ':memory:') throw inMemory();
  return isAbsolute(database) ? resolve(database) : resolve(cwd, database);
}

function inMemory(): SessionsUrlError {
  return new SessionsUrlError('--sessions: an in-memory SQLite database cannot be the map (Galaxy writes a file): name its file, sqlite:////absolute/path');
}

/**
 * The path of a SQLite URI filename (`file:path`, `file:/abs`,
 * `file:///abs`, `file://localhost/abs`), percent-decoded. `mode=memory`
 * and a non-local authority are refused; `mode=ro|rw|rwc`, `cache`,
 * `immutable`, `nolock`, `psow` and `vfs` change nothing here (the proxy
 * reads the file read-only and follows its changes).
 */
function sqliteUriPath(database: string, query: ReadonlyArray<readonly [string, string]>): string {
  const uriArgs = query.filter(([name]) => !PYSQLITE_ARGS.has(name));
  const [name, ...rest] = database.split('?');
  const inline = rest.length === 0 ? [] : parseQuery(rest.join('?'));
  if ([...uriArgs, ...inline].some(([k, v]) => k === 'mode' && v === 'memory')) throw inMemory();
  if (name === undefined || !name.startsWith('file:')) {
    // pysqlite would pass a plain name through as a file name.
    if (name === undefined || name === '' || name === ':memory:') throw inMemory();
    return name;
  }
  let path = name.slice('file:'.length).split('#')[0];
  if (path.startsWith('//')) {
    const slash = path.indexOf('/', 2);
    const authority = slash < 0 ? path.slice(2) : path.slice(2, slash);
    if (authority !== '' && authority !== 'localhost') {
      throw new SessionsUrlError(`--sessions: a SQLite URI names a file on this machine: file:/absolute/path or file:relative/path, not a host`);
    }
    path = slash < 0 ? '' : path.slice(slash);
  }
  path = unquote(path);
  if (path === '' || path === ':memory:') throw inMemory();
  return path;
}
