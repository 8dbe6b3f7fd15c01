import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'pg-connection-string';
import type { ClientConfig } from 'pg';
import { pgpassPassword, pgpassPath, PgpassUnusableError, type PgpassTarget } from './pgpass.js';

/**
 * `--sessions postgresql://…`: the connection settings, and a label for logs,
 * `--check`, `/health` and error messages that never holds the password.
 *
 * Accepted: `postgresql://` and `postgres://`, with an SQLAlchemy driver
 * suffix too (`postgresql+psycopg2://`, as in Galaxy's
 * `interactivetoolsproxy_map`), user, password, host (a name, an address, or
 * a socket directory as `?host=/var/run/postgresql`), port, database, and
 * libpq's query parameters (`sslmode`, `sslrootcert`, `application_name`,
 * `options`, …). `sslmode` has libpq's meaning, with libpq's second try for
 * `prefer` (its default) and `allow` (`secondTry`, which the store makes). Whatever
 * the URL leaves out comes from the `PG*` environment variables (libpq's
 * meanings), and the password, when the URL has none, from PGPASSWORD or
 * the password file (pgpass.ts).
 */

/** A URL scheme this store takes (driver suffix and case as SQLAlchemy allows). */
const SCHEME = /^postgres(?:ql)?(?:\+[a-z0-9_]+)?:\/\//i;

/** True when `--sessions` names a PostgreSQL map rather than a file. */
export function isPostgresUrl(value: string): boolean {
  return SCHEME.test(value);
}

/** Where a PostgreSQL map is, for `pg`, and how to name it without secrets. */
export interface PostgresLocation {
  /**
   * Settings for `pg.Client`, with what the `PG*` variables fill in; `password`
   * is the URL's, else a look-up (PGPASSWORD, the password file) pg calls when
   * the server asks for one.
   */
  readonly config: ClientConfig;
  /** `postgresql://user@host:port/database`, never the password. */
  readonly label: string;
  /**
   * libpq's second try, for `sslmode=prefer` (libpq's default: also when no
   * sslmode is given) and `allow`: given why the first try (`config`) failed,
   * the `ssl` setting to try once more with at once, or undefined for none.
   */
  readonly secondTry?: (err: Error) => { readonly ssl: ClientConfig['ssl'] } | undefined;
}

/** A first try libpq follows with a second: the server has no TLS, or refused the login (pg_hba.conf, say) during start-up. */
function libpqRetries(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return err.message === 'The server does not support SSL connections' || (typeof code === 'string' && code.startsWith('28'));
}

/** A `--sessions` URL that cannot be used; the message never repeats the URL (it may hold a password). */
export class PostgresUrlError extends Error {
  override readonly name = 'PostgresUrlError';
  readonly code = 'ERR_GIE_POSTGRES_URL';
}

/** The password was not found, or the password file cannot be used; says where it looked, never a password. */
export class PostgresPasswordError extends Error {
  override readonly name = 'PostgresPasswordError';
  readonly code = 'ERR_GIE_POSTGRES_PASSWORD';
}

/** libpq's SSL settings from the environment, for a URL that has none of its own. */
const SSL_ENV: readonly (readonly [string, string])[] = [
  ['sslmode', 'PGSSLMODE'],
  ['sslrootcert', 'PGSSLROOTCERT'],
  ['sslcert', 'PGSSLCERT'],
  ['sslkey', 'PGSSLKEY'],
];

/** The `sslmode` values libpq knows. */
const SSL_MODES = new Set(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']);

/**
 * Where libpq connects when neither the URL nor PGHOST names a host: its
 * default socket directory, /var/run/postgresql in Debian's and Red Hat's
 * builds (and PostgreSQL's own packages for them), /tmp in PostgreSQL's own
 * default build. (pg alone would go to localhost over TCP: maybe another
 * server, or another authentication, than Galaxy's `postgresql:///galaxy` reaches.)
 */
export function defaultSocketDir(): string {
  return existsSync('/var/run/postgresql') ? '/var/run/postgresql' : '/tmp';
}

/**
 * Parses `--sessions`, with the `PG*` variables of `env` (libpq's) for what
 * the URL leaves out. Throws PostgresUrlError.
 */
export function parsePostgresUrl(value: string, env: NodeJS.ProcessEnv = process.env): PostgresLocation {
  if (!isPostgresUrl(value)) throw new PostgresUrlError('--sessions: not a postgresql:// or postgres:// URL');
  // pg-connection-string knows postgres:// and postgresql:// only.
  let url = value.replace(SCHEME, 'postgresql://');
  // libpq's SSL settings: the URL's, else PGSSLMODE and friends (pg's own reading of PGSSLMODE
  // checks certificates where libpq does not), else libpq's default root certificate.
  const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  const extra: string[] = [];
  for (const [param, name] of SSL_ENV) {
    const v = env[name];
    if (query.has(param) || v === undefined || v === '') continue;
    query.set(param, v);
    if (!(param === 'sslrootcert' && v === 'system')) extra.push(`${param}=${encodeURIComponent(v)}`);
  }
  const rootcert = query.get('sslrootcert');
  // sslrootcert=system (libpq 16): the system's CAs, and verify-full unless said otherwise.
  if (rootcert === 'system') {
    url = url.replace(/([?&])sslrootcert=system(&|$)/, (_m, before: string, after: string) => (after === '&' ? before : ''));
    if (!query.has('sslmode')) {
      query.set('sslmode', 'verify-full');
      extra.push('sslmode=verify-full');
    }
  }
  const sslmode = query.get('sslmode') ?? undefined;
  if (sslmode !== undefined && !SSL_MODES.has(sslmode)) {
    throw new PostgresUrlError(`--sessions: sslmode ${JSON.stringify(sslmode)} is not one of libpq's (${[...SSL_MODES].join(', ')})`);
  }
  // libpq reads ~/.postgresql/root.crt when there is one and no sslrootcert (require then checks the CA too).
  if (rootcert === null && (sslmode === 'require' || sslmode === 'verify-ca' || sslmode === 'verify-full') && env.HOME !== undefined && env.HOME !== '') {
    const defaultRoot = join(env.HOME, '.postgresql', 'root.crt');
    if (existsSync(defaultRoot)) extra.push(`sslrootcert=${encodeURIComponent(defaultRoot)}`);
  }
  if (extra.length > 0) url += `${url.includes('?') ? '&' : '?'}${extra.join('&')}`;
  let parsed: ReturnType<typeof parse>;
  try {
    // libpq's sslmode meanings (require: encrypt, no certificate check), as Galaxy's psycopg2 has them.
    // `allow` is read as `prefer` there; it is handled below.
    parsed = parse(sslmode === 'allow' ? url.replace(/([?&]sslmode=)allow/, '$1prefer') : url, { useLibpqCompat: true });
  } catch (err) {
    throw new PostgresUrlError(`--sessions: the PostgreSQL URL cannot be used: ${safeReason(err, value)}`);
  }
  const config: ClientConfig = {};
  const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  // What the URL leaves out, from libpq's variables: pg would read the same, but the label must name what is used.
  const user = text(parsed.user) ?? text(env.PGUSER);
  const password = text(parsed.password);
  const host = text(parsed.host) ?? text(env.PGHOST) ?? defaultSocketDir();
  const database = text(parsed.database) ?? text(env.PGDATABASE);
  const port = text(parsed.port) ?? text(env.PGPORT);
  if (user !== undefined) config.user = user;
  if (host !== undefined) config.host = host;
  if (database !== undefined) config.database = database;
  if (port !== undefined) {
    const n = Number(port);
    const where = text(parsed.port) === undefined ? 'PGPORT' : '--sessions: port';
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new PostgresUrlError(`${where} ${JSON.stringify(port)} is not a port number`);
    config.port = n;
  }
  // libpq's order: the URL, PGPASSWORD, then the password file; looked up only when the server asks.
  config.password = password ?? passwordSource(env);
  const applicationName = text(parsed.application_name) ?? text(env.PGAPPNAME);
  if (applicationName !== undefined) config.application_name = applicationName;
  const options = text(parsed.options) ?? text(env.PGOPTIONS);
  if (options !== undefined) config.options = options;
  // Over a unix socket libpq never uses SSL; pg would ask the server for it and fail.
  const socket = (host ?? '').startsWith('/');
  let secondTry: PostgresLocation['secondTry'];
  if (socket) {
    config.ssl = false;
  } else if (sslmode === 'allow') {
    // libpq: without TLS first, then with it (no certificate check).
    config.ssl = false;
    secondTry = (err) => (libpqRetries(err) ? { ssl: { rejectUnauthorized: false } } : undefined);
  } else if (sslmode === undefined || sslmode === 'prefer') {
    // libpq's default: TLS without a certificate check, then without TLS.
    config.ssl = { rejectUnauthorized: false };
    secondTry = (err) => (libpqRetries(err) ? { ssl: false } : undefined);
  } else if (parsed.ssl !== undefined) {
    const ssl = parsed.ssl;
    // The parser's SSL settings hold nulls for what the URL leaves out; tls wants them absent.
    config.ssl = typeof ssl === 'object' && ssl !== null ? Object.fromEntries(Object.entries(ssl).filter(([, v]) => v !== null && v !== undefined)) : Boolean(ssl);
  }
  return secondTry === undefined ? { config, label: labelFor(config) } : { config, label: labelFor(config), secondTry };
}

/**
 * The password when the URL has none, as libpq finds it: PGPASSWORD, else
 * the password file. Called by pg when the server asks for a password
 * (never before), with the connection's settings, defaults applied.
 */
function passwordSource(env: NodeJS.ProcessEnv): (target?: PgpassTarget) => Promise<string> {
  const fromEnv = env.PGPASSWORD;
  const file = pgpassPath(env);
  return async (target: PgpassTarget = {}) => {
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const role = target.user === undefined ? 'the role' : `role ${JSON.stringify(target.user)}`;
    let found: string | undefined;
    try {
      found = file === undefined ? undefined : await pgpassPassword(file, target);
    } catch (err) {
      if (err instanceof PgpassUnusableError) {
        throw new PostgresPasswordError(`the server asks for a password for ${role} and none is in the URL or PGPASSWORD; ${err.message}`, { cause: err });
      }
      throw err;
    }
    if (found !== undefined) return found;
    const where = file === undefined ? 'no password file (neither PGPASSFILE nor HOME is set)' : `none in ${file} for ${target.host ?? 'localhost'}:${target.port ?? 5432}:${target.database ?? ''}:${target.user ?? ''}`;
    throw new PostgresPasswordError(`the server asks for a password for ${role} and none was given: not in the URL, no PGPASSWORD, ${where} (add a line host:port:database:user:password to ~/.pgpass or PGPASSFILE, mode 0600)`);
  };
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
