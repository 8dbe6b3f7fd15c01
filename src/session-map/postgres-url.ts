import { parse } from 'pg-connection-string';
import type { ConnectionOptions } from 'node:tls';
import type { ClientConfig } from 'pg';

/**
 * `--sessions postgresql://…`: the connection settings, and a label for logs,
 * `--check`, `/health` and error messages that never holds the password.
 *
 * Accepted: `postgresql://` and `postgres://`, with an SQLAlchemy driver
 * suffix too (`postgresql+psycopg2://`, as in Galaxy's
 * `interactivetoolsproxy_map`), user, password, host (a name, an address, or
 * a socket directory as `?host=/var/run/postgresql`), port, database, and
 * libpq's query parameters (`sslmode`, `sslrootcert`, `application_name`,
 * `options`, …). `sslmode` has libpq's meaning. Whatever the URL leaves out
 * comes from the `PG*` environment variables and libpq's defaults, and the
 * password from `~/.pgpass` (or `PGPASSFILE`) when none is given.
 */

/** A URL scheme this store takes (driver suffix and case as SQLAlchemy allows). */
const SCHEME = /^postgres(?:ql)?(?:\+[a-z0-9_]+)?:\/\//i;

/** True when `--sessions` names a PostgreSQL map rather than a file. */
export function isPostgresUrl(value: string): boolean {
  return SCHEME.test(value);
}

/** Where a PostgreSQL map is, for `pg`, and how to name it without secrets. */
export interface PostgresLocation {
  /** Settings for `pg.Client`; `password` only when the URL holds one. */
  readonly config: ClientConfig;
  /** `postgresql://user@host:port/database`, never the password. */
  readonly label: string;
}

/** A `--sessions` URL that cannot be used; the message never repeats the URL (it may hold a password). */
export class PostgresUrlError extends Error {
  override readonly name = 'PostgresUrlError';
  readonly code = 'ERR_GIE_POSTGRES_URL';
}

/** Parses `--sessions`. Throws PostgresUrlError. */
export function parsePostgresUrl(value: string): PostgresLocation {
  if (!isPostgresUrl(value)) throw new PostgresUrlError('--sessions: not a postgresql:// or postgres:// URL');
  // pg-connection-string knows postgres:// and postgresql:// only.
  const url = value.replace(SCHEME, 'postgresql://');
  let parsed: ReturnType<typeof parse>;
  try {
    // libpq's sslmode meanings (require: encrypt, no certificate check), as Galaxy's psycopg2 has them.
    parsed = parse(url, { useLibpqCompat: true });
  } catch (err) {
    throw new PostgresUrlError(`--sessions: the PostgreSQL URL cannot be used: ${safeReason(err, value)}`);
  }
  const config: ClientConfig = {};
  const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const user = text(parsed.user);
  const password = text(parsed.password);
  const host = text(parsed.host);
  const database = text(parsed.database);
  const port = text(parsed.port);
  if (user !== undefined) config.user = user;
  if (password !== undefined) config.password = password;
  if (host !== undefined) config.host = host;
  if (database !== undefined) config.database = database;
  if (port !== undefined) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new PostgresUrlError(`--sessions: port ${JSON.stringify(port)} is not a port number`);
    config.port = n;
  }
  const applicationName = text(parsed.application_name);
  if (applicationName !== undefined) config.application_name = applicationName;
  const options = text(parsed.options);
  if (options !== undefined) config.options = options;
  // Over a unix socket libpq never uses SSL; pg would ask the server for it and fail.
  const socket = (host ?? process.env.PGHOST ?? '').startsWith('/');
  if (parsed.ssl !== undefined && !socket) {
    const ssl = parsed.ssl;
    // The parser's SSL settings hold nulls for what the URL leaves out; tls wants them absent.
    config.ssl = typeof ssl === 'object' && ssl !== null ? (Object.fromEntries(Object.entries(ssl).filter(([, v]) => v !== null && v !== undefined)) as ConnectionOptions) : Boolean(ssl);
  }
  return { config, label: labelFor(config) };
}

/** The URL without a password, with whatever the environment will fill in left out. */
function labelFor(config: ClientConfig): string {
  const user = config.user === undefined ? '' : `${encodeURIComponent(config.user)}@`;
  const socket = config.host?.startsWith('/') === true;
  const hostPart = config.host === undefined || socket ? '' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const port = config.port === undefined ? '' : socket ? '' : `:${config.port}`;
  const db = config.database === undefined ? '' : encodeURIComponent(config.database);
  const query: string[] = [];
  if (socket && config.host !== undefined) query.push(`host=${config.host}`);
  if (socket && config.port !== undefined) query.push(`port=${config.port}`);
  return `postgresql://${user}${hostPart}${port}/${db}${query.length > 0 ? `?${query.join('&')}` : ''}`;
}

/** An error's message with the URL (and its password) cut out. */
function safeReason(err: unknown, url: string): string {
  let message = err instanceof Error ? err.message : String(err);
  const password = /^[^:]+:\/\/[^:/@]*:([^@/]*)@/.exec(url)?.[1];
  message = message.split(url).join('<url>');
  if (password !== undefined && password !== '') {
    message = message.split(password).join('***');
    try {
      message = message.split(decodeURIComponent(password)).join('***');
    } catch {
      // not percent-encoded text: the raw form is already cut
    }
  }
  return message;
}
