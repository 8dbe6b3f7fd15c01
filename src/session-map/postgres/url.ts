import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { ClientConfig } from 'pg';
import { isPostgresDialect, parseSqlalchemyUrl, SessionsUrlError, type SqlalchemyUrl } from '../sqlalchemy-url.js';
import { pgpassPassword, pgpassPath, PgpassUnusableError, type PgpassTarget } from './pgpass.js';
import { lookUpService, PgServiceError, serviceFiles } from './service-file.js';
import { tcpPort } from '../../tcp-port.js';

/**
 * `--sessions postgresql://…`: the connection settings as Galaxy's own
 * connection gets them, and a label for logs, `--check`, `/health` and error
 * messages that never holds the password.
 *
 * Galaxy hands its `interactivetoolsproxy_map` to SQLAlchemy, whose
 * psycopg2 dialect passes the URL's parts and query arguments to libpq; libpq
 * then fills in what is left out. Here the same steps, in the same order:
 * 1. the URL, read as SQLAlchemy reads it (sqlalchemy-url.ts): any
 *    `postgresql+driver://` or `postgres://`, user, password, host (a name,
 *    an address, `[IPv6]`, or a socket directory as `?host=/var/run/postgresql`),
 *    port, database, and libpq keywords as query arguments;
 * 2. the connection service (`service=` or PGSERVICE, service-file.ts);
 * 3. libpq's environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE,
 *    PGSSLMODE…);
 * 4. libpq's defaults: the user is the process's operating-system user (not
 *    `$USER`, which supervisord and service managers may not set), the
 *    database is named after the user, the host is libpq's default socket
 *    directory, the port 5432.
 * The password, when none is given, comes from PGPASSWORD or the password
 * file (pgpass.ts), looked up when the server asks for one. `sslmode` has
 * libpq's meaning, with libpq's second try for `prefer` (its default) and
 * `allow` (`secondTry`, which the store makes).
 */

/** True when `--sessions` names a PostgreSQL map rather than a file. */
export function isPostgresUrl(value: string): boolean {
  try {
    const url = parseSqlalchemyUrl(value);
    return url !== undefined && isPostgresDialect(url.dialect);
  } catch {
    return false;
  }
}

/** Where a PostgreSQL map is, for `pg`, and how to name it without secrets. */
export interface PostgresLocation {
  /**
   * Settings for `pg.Client`, every one filled in; `password` is the URL's,
   * else a look-up (PGPASSWORD, the password file) pg calls when the server
   * asks for one.
   */
  readonly config: ClientConfig;
  /** `postgresql://user@host:port/database`, never the password. */
  readonly label: string;
  /**
   * Where each of user, database, host and port came from (`url`, `service`,
   * `PGUSER`…, `default`), for error messages: an admin who did not write a
   * user name must be told which one was used.
   */
  readonly origins: Readonly<Record<'user' | 'dbname' | 'host' | 'port', string>>;
  /** Where a password the URL does not hold is looked for: PGPASSWORD, else this file (libpq's order). */
  readonly passwordFrom: string;
  /** libpq's sslmode as given (URL, service, PGSSLMODE); undefined: libpq's default, prefer. */
  readonly sslmode: string | undefined;
  /**
   * libpq's second try, for `sslmode=prefer` (libpq's default: also when no
   * sslmode is given) and `allow`: given why the first try (`config`) failed,
   * the `ssl` setting to try once more with at once, or undefined for none.
   */
  readonly secondTry?: (err: Error) => { readonly ssl: ClientConfig['ssl'] } | undefined;
}

/** What libpq's defaults come from on this machine (tests give their own). */
interface LibpqSystem {
  /** The name of the process's operating-system user (libpq: getpwuid(geteuid())). Throws when it has none. */
  userName(): string;
  /** That user's home directory from the password database, for `~` when HOME is not set. */
  homeDir(): string | undefined;
}

/** The running process's user, as libpq looks it up. */
const SYSTEM: LibpqSystem = {
  userName: () => userInfo().username,
  homeDir: () => {
    try {
      return userInfo().homedir;
    } catch {
      return undefined;
    }
  },
};

/** A first try libpq follows with a second: the server has no TLS, or refused the login (pg_hba.conf, say) during start-up. */
function libpqRetries(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return err.message === 'The server does not support SSL connections' || (typeof code === 'string' && code.startsWith('28'));
}

/** A `--sessions` URL that cannot be used; the message never repeats the URL (it may hold a password). */
export class PostgresUrlError extends SessionsUrlError {
  override readonly name = 'PostgresUrlError';
  override readonly code = 'ERR_GIE_POSTGRES_URL';
}

/** The password was not found, or the password file cannot be used; says where it looked, never a password. */
export class PostgresPasswordError extends Error {
  override readonly name = 'PostgresPasswordError';
  readonly code = 'ERR_GIE_POSTGRES_PASSWORD';
}

/** The libpq keywords that decide where and how the proxy connects, with their environment variables. */
const KEYWORDS: Readonly<Record<string, string | undefined>> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  password: undefined, // PGPASSWORD: looked up when the server asks (passwordSource)
  passfile: 'PGPASSFILE',
  service: undefined, // PGSERVICE: read first (resolveKeywords)
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  application_name: 'PGAPPNAME',
  fallback_application_name: undefined,
  options: 'PGOPTIONS',
};

/**
 * libpq keywords accepted with no effect here: connection tuning the
 * proxy does itself (its own connect time-out of 5 s, keep-alives and
 * heartbeat, UTF-8) or that only matters with several hosts or Kerberos.
 */
const IGNORED = new Set([
  'connect_timeout',
  'client_encoding',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
  'target_session_attrs',
  'load_balance_hosts',
  'sslcompression',
  'sslsni',
  'krbsrvname',
  'gsslib',
]);

/** libpq keywords a service file may hold. */
const isKeyword = (keyword: string): boolean => Object.hasOwn(KEYWORDS, keyword) || IGNORED.has(keyword) || keyword === 'gssencmode';

/** The `sslmode` values libpq knows. */
const SSL_MODES = new Set(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']);

/**
 * Parses `--sessions`, with the `PG*` variables of `env` (libpq's) and this
 * machine's user for what the URL leaves out. Throws PostgresUrlError.
 */
export function parsePostgresUrl(value: string, env: NodeJS.ProcessEnv = process.env, system: LibpqSystem = SYSTEM): PostgresLocation {
  const url = parseSqlalchemyUrl(value);
  if (url === undefined || !isPostgresDialect(url.dialect)) throw new PostgresUrlError('--sessions: not a postgresql:// or postgres:// URL');
  try {
    return locate(url, env, system);
  } catch (err) {
    // A file name or a value in a message might hold the password by chance: cut it out.
    const password = url.password ?? url.query.find(([k]) => k === 'password')?.[1];
    if (err instanceof PostgresUrlError && password !== undefined && password !== '' && err.message.includes(password)) {
      throw new PostgresUrlError(err.message.split(password).join('***'));
    }
    throw err;
  }
}

function locate(url: SqlalchemyUrl, env: NodeJS.ProcessEnv, system: LibpqSystem): PostgresLocation {
  const home = env.HOME !== undefined && env.HOME !== '' ? env.HOME : system.homeDir();
  const { values, origins } = resolveKeywords(explicitKeywords(url), env, system, home);
  const text = (k: string): string | undefined => values.get(k);
  const host = text('host') as string;
  if (!host.startsWith('/') && (host === '' || /[[\]\s@/]/.test(host))) {
    throw new PostgresUrlError(`--sessions: host ${JSON.stringify(host)} is not a host name, an address ([IPv6] in brackets) or a socket directory`);
  }
  const portText = text('port') as string;
  const port = tcpPort(portText);
  if (port === undefined) {
    throw new PostgresUrlError(`${origins.port === 'url' ? '--sessions: port' : `${origins.port}: port`} ${JSON.stringify(portText)} is not a port number`);
  }
  const config: ClientConfig = { user: text('user'), host, port, database: text('dbname') };
  // libpq's order: the URL, PGPASSWORD, then the password file; looked up only when the server asks.
  const passfile = text('passfile') ?? pgpassPath(env, home);
  config.password = text('password') ?? passwordSource(env, passfile);
  const passwordFrom =
    text('password') !== undefined ? 'the URL' : nonEmpty(env.PGPASSWORD) !== undefined ? 'PGPASSWORD' : `the password file ${passfile ?? '~/.pgpass (no home directory)'}`;
  const applicationName = text('application_name') ?? text('fallback_application_name');
  if (applicationName !== undefined) config.application_name = applicationName;
  const options = text('options');
  if (options !== undefined) config.options = options;
  const tls = tlsSettings(values, host, home);
  config.ssl = tls.ssl;
  const location = { config, label: labelFor(config, origins.port !== 'default'), origins, passwordFrom, sslmode: text('sslmode') };
  return tls.secondTry === undefined ? location : { ...location, secondTry: tls.secondTry };
}

/** The libpq keywords the URL sets, as SQLAlchemy's psycopg2 dialect hands them to libpq. */
function explicitKeywords(url: SqlalchemyUrl): Map<string, string> {
  const values = new Map<string, string>();
  // SQLAlchemy passes only the parts that are not empty.
  if (url.username) values.set('user', url.username);
  if (url.password) values.set('password', url.password);
  if (url.host) values.set('host', url.host);
  if (url.port) values.set('port', url.port);
  if (url.database) values.set('dbname', url.database);
  const hosts = url.query.filter(([name]) => name === 'host');
  if (hosts.length > 1 || hosts.some(([, h]) => h.includes(',')) || (url.host ?? '').includes(',')) {
    throw new PostgresUrlError('--sessions: several hosts (libpq fail-over) are not supported: name one host');
  }
  if (hosts.length > 0 && url.host) {
    throw new PostgresUrlError('--sessions: a host both before the database and in ?host= (SQLAlchemy refuses that too): name it once');
  }
  for (const [name, v] of url.query) {
    if (!isKeyword(name)) {
      throw new PostgresUrlError(`--sessions: ${JSON.stringify(name)} is not a connection argument the proxy knows (libpq's keywords: ${Object.keys(KEYWORDS).join(', ')})`);
    }
    if (name === 'gssencmode' && v === 'require') throw new PostgresUrlError('--sessions: gssencmode=require: GSSAPI encryption is not supported; use sslmode');
    if (IGNORED.has(name) || name === 'gssencmode') continue;
    if (name === 'host') {
      // SQLAlchemy's ?host=name:port form.
      const m = /^([^/:[\]][^:]*|\[[^\]]+\]):(\d*)$/.exec(v);
      if (m !== null) {
        values.set('host', (m[1]).replace(/^\[|\]$/g, ''));
        if (m[2] !== '') values.set('port', m[2]);
        continue;
      }
    }
    values.set(name, v);
  }
  return values;
}

/** Fills in the service's settings, then libpq's variables, then its defaults, noting where each place came from. */
function resolveKeywords(
  values: Map<string, string>,
  env: NodeJS.ProcessEnv,
  system: LibpqSystem,
  home: string | undefined,
): { values: Map<string, string>; origins: PostgresLocation['origins'] } {
  const origin = new Map<string, string>([...values.keys()].map((k) => [k, 'url']));
  const service = values.get('service') ?? nonEmpty(env.PGSERVICE);
  if (service !== undefined) {
    let settings: Map<string, string>;
    try {
      settings = lookUpService(service, serviceFiles(env, home), isKeyword);
    } catch (err) {
      if (err instanceof PgServiceError) throw new PostgresUrlError(`--sessions: ${err.message}`, { cause: err });
      throw err;
    }
    for (const [k, v] of settings) {
      if (values.has(k) || IGNORED.has(k) || k === 'gssencmode') continue;
      values.set(k, v);
      origin.set(k, `service ${service}`);
    }
  }
  for (const [k, variable] of Object.entries(KEYWORDS)) {
    const v = variable === undefined ? undefined : nonEmpty(env[variable]);
    if (values.has(k) || v === undefined) continue;
    values.set(k, v);
    origin.set(k, variable as string);
  }
  // libpq connects to hostaddr and names the server by host: without a host, the address is it.
  if (!values.has('host') && values.has('hostaddr')) {
    values.set('host', values.get('hostaddr') as string);
    origin.set('host', origin.get('hostaddr') as string);
  }
  if (!values.has('user')) {
    values.set('user', osUser(system));
    origin.set('user', 'default');
  }
  const defaults: Array<[string, string]> = [
    ['dbname', values.get('user') as string],
    ['host', defaultSocketDir()],
    ['port', '5432'],
  ];
  for (const [k, v] of defaults) {
    if (values.has(k)) continue;
    values.set(k, v);
    origin.set(k, 'default');
  }
  const originOf = (k: string): string => origin.get(k) ?? 'default';
  return { values, origins: { user: originOf('user'), dbname: originOf('dbname'), host: originOf('host'), port: originOf('port') } };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** The process's user name, as libpq takes it when no user is given. */
function osUser(system: LibpqSystem): string {
  try {
    return system.userName();
  } catch (err) {
    throw new PostgresUrlError(
      `--sessions: no user name in the URL or PGUSER, and this process's user (uid ${process.getuid?.() ?? '?'}) has no entry in the password database to take it from: name the user in the URL (postgresql://USER@…)`,
      { cause: err },
    );
  }
}

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

/** A certificate or key file named by `keyword`, read now so that a wrong path is a start-up error. */
function readPem(keyword: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PostgresUrlError(`--sessions: ${keyword} ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
}

/**
 * pg's TLS settings for libpq's `sslmode` (the URL's, else PGSSLMODE; libpq's
 * default `prefer`), root certificate (`sslrootcert`, `system` for the
 * system's CAs, else `~/.postgresql/root.crt` when it exists), client
 * certificate and key. Over a unix socket libpq never uses TLS.
 */
function tlsSettings(values: Map<string, string>, host: string, home: string | undefined): { ssl: ClientConfig['ssl']; secondTry?: PostgresLocation['secondTry'] } {
  let sslmode = values.get('sslmode');
  if (sslmode !== undefined && !SSL_MODES.has(sslmode)) {
    throw new PostgresUrlError(`--sessions: sslmode ${JSON.stringify(sslmode)} is not one of libpq's (${[...SSL_MODES].join(', ')})`);
  }
  let rootcert = values.get('sslrootcert');
  // sslrootcert=system (libpq 16): the system's CAs, and verify-full unless said otherwise.
  const systemRoots = rootcert === 'system';
  if (systemRoots) {
    rootcert = undefined;
    sslmode ??= 'verify-full';
  }
  if (host.startsWith('/')) return { ssl: false };
  if (sslmode === 'disable') return { ssl: false };
  if (sslmode === 'allow') {
    // libpq: without TLS first, then with it (no certificate check).
    return { ssl: false, secondTry: (err) => (libpqRetries(err) ? { ssl: { rejectUnauthorized: false } } : undefined) };
  }
  if (sslmode === undefined || sslmode === 'prefer') {
    // libpq's default: TLS without a certificate check, then without TLS.
    return { ssl: { rejectUnauthorized: false }, secondTry: (err) => (libpqRetries(err) ? { ssl: false } : undefined) };
  }
  // libpq reads ~/.postgresql/root.crt when there is one and no sslrootcert (require then checks the CA too).
  if (rootcert === undefined && !systemRoots && home !== undefined) {
    const defaultRoot = join(home, '.postgresql', 'root.crt');
    if (existsSync(defaultRoot)) rootcert = defaultRoot;
  }
  const ssl: Record<string, unknown> = {};
  const cert = values.get('sslcert');
  const key = values.get('sslkey');
  if (cert !== undefined) ssl.cert = readPem('sslcert', cert);
  if (key !== undefined) ssl.key = readPem('sslkey', key);
  if (rootcert !== undefined) ssl.ca = readPem('sslrootcert', rootcert);
  const skipHostName = (): undefined => undefined;
  if (sslmode === 'require') {
    // require with a root certificate is verify-ca (the CA checked, not the host name); without, nothing is checked.
    if (rootcert === undefined) ssl.rejectUnauthorized = false;
    else ssl.checkServerIdentity = skipHostName;
  } else if (sslmode === 'verify-ca') {
    if (rootcert === undefined) {
      throw new PostgresUrlError('--sessions: sslmode=verify-ca needs the CA that signed the server certificate: sslrootcert=/path/to/ca.pem (or ~/.postgresql/root.crt)');
    }
    ssl.checkServerIdentity = skipHostName;
  }
  return { ssl };
}

/**
 * The password when the URL has none, as libpq finds it: PGPASSWORD, else
 * the password file. Called by pg when the server asks for a password
 * (never before), with the connection's settings.
 */
function passwordSource(env: NodeJS.ProcessEnv, file: string | undefined): (target?: PgpassTarget) => Promise<string> {
  const fromEnv = env.PGPASSWORD;
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
    const where = file === undefined ? 'no password file (neither PGPASSFILE nor a home directory)' : `none in ${file} for ${target.host ?? 'localhost'}:${target.port ?? 5432}:${target.database ?? ''}:${target.user ?? ''}`;
    throw new PostgresPasswordError(`the server asks for a password for ${role} and none was given: not in the URL, no PGPASSWORD, ${where} (add a line host:port:database:user:password to ~/.pgpass or PGPASSFILE, mode 0600)`);
  };
}

/** The URL without a password: user, host (a socket directory as `?host=`), port when not libpq's default, database. */
function labelFor(config: ClientConfig, showPort: boolean): string {
  const user = config.user === undefined ? '' : `${encodeURIComponent(config.user)}@`;
  const socket = config.host?.startsWith('/') === true;
  const hostPart = config.host === undefined || socket ? '' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const port = !showPort || socket ? '' : `:${config.port}`;
  const db = config.database === undefined ? '' : encodeURIComponent(config.database);
  const query: string[] = [];
  if (socket && config.host !== undefined) query.push(`host=${config.host}`);
  if (socket && showPort) query.push(`port=${config.port}`);
  return `postgresql://${user}${hostPart}${port}/${db}${query.length > 0 ? `?${query.join('&')}` : ''}`;
}
