import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientConfig } from 'pg';
import { resolveOptions } from '../../../src/options.js';
import { parsePostgresUrl } from '../../../src/session-map/postgres/url.js';
import { parseSqlalchemyUrl, resolveSessionsSpec, SessionsUrlError } from '../../../src/session-map/sqlalchemy-url.js';
import { Random } from '../../helpers/random.js';

/** The working directory Galaxy would be started in. */
const CWD = '/srv/galaxy/server';
/** A machine whose OS user is `galaxy` (libpq's default user) and has no PG* variables. */
const MACHINE = { userName: () => 'galaxy', homeDir: () => undefined };

/** What the proxy opens for a `--sessions` value: a file, or a PostgreSQL database by its label. */
function opened(value: string): string {
  const spec = resolveSessionsSpec(value, CWD);
  if (spec !== value || !/^[a-z0-9+]+:\/\//i.test(value)) return `file ${spec}`;
  const { config, label } = parsePostgresUrl(value, {}, MACHINE);
  return `postgresql ${label} ${tls(config.ssl)}`;
}

function tls(ssl: ClientConfig['ssl']): string {
  if (ssl === false) return 'no-tls';
  if (typeof ssl === 'object' && ssl.rejectUnauthorized === false) return 'tls-unchecked';
  return 'tls-checked';
}

/**
 * URL → what is opened, for every form Galaxy's `interactivetoolsproxy_map`
 * and `interactivetools_map` take (SQLAlchemy's reading; libpq's defaults
 * for a PostgreSQL URL's missing parts).
 */
const TABLE: ReadonlyArray<readonly [string, string]> = [
  // Paths, as today: taken as given (the CLI makes them absolute).
  ['database/interactivetools_map.sqlite', 'file database/interactivetools_map.sqlite'],
  ['/srv/galaxy/var/interactivetools_map.sqlite', 'file /srv/galaxy/var/interactivetools_map.sqlite'],
  ['/srv/galaxy/var/session_map.json', 'file /srv/galaxy/var/session_map.json'],
  ['mysql:/one-slash-is-a-path', 'file mysql:/one-slash-is-a-path'],
  // SQLite URLs: three slashes and a relative path (from the working directory), four and an absolute one.
  ['sqlite:///database/interactivetools_map.sqlite', `file ${CWD}/database/interactivetools_map.sqlite`],
  ['sqlite:////srv/galaxy/var/interactivetools_map.sqlite', 'file /srv/galaxy/var/interactivetools_map.sqlite'],
  ['sqlite+pysqlite:////srv/galaxy/var/map.sqlite', 'file /srv/galaxy/var/map.sqlite'],
  ['SQLite:///var/map.db', `file ${CWD}/var/map.db`],
  ['sqlite:////srv/galaxy/var/map.sqlite?timeout=30', 'file /srv/galaxy/var/map.sqlite'],
  ['sqlite:///../shared/map%20one.sqlite', `file /srv/galaxy/shared/map one.sqlite`],
  // SQLite URI filenames (uri=true): the file's path; the map is read read-only whatever mode says.
  ['sqlite:///file:database/map.sqlite?mode=ro&uri=true', `file ${CWD}/database/map.sqlite`],
  ['sqlite:///file:/srv/galaxy/var/map.sqlite?mode=ro&uri=true', 'file /srv/galaxy/var/map.sqlite'],
  ['sqlite:///file:///srv/galaxy/var/map.sqlite?uri=true&cache=shared', 'file /srv/galaxy/var/map.sqlite'],
  ['sqlite:///file://localhost/srv/galaxy/var/m%20ap.sqlite?uri=true', 'file /srv/galaxy/var/m ap.sqlite'],
  // PostgreSQL: every scheme and driver SQLAlchemy takes, the driver ignored.
  ['postgresql:///gxitproxy?host=/var/run/postgresql', 'postgresql postgresql://galaxy@/gxitproxy?host=/var/run/postgresql no-tls'],
  ['postgres://gx@db.example.org/gxitproxy', 'postgresql postgresql://gx@db.example.org/gxitproxy tls-unchecked'],
  ['postgresql+psycopg2://gx:pw@db.example.org:6543/gxitproxy', 'postgresql postgresql://gx@db.example.org:6543/gxitproxy tls-unchecked'],
  ['postgresql+psycopg://gx@db/gxitproxy?sslmode=verify-full', 'postgresql postgresql://gx@db/gxitproxy tls-checked'],
  ['postgresql+pg8000://gx@[::1]:5432/gxitproxy', 'postgresql postgresql://gx@[::1]:5432/gxitproxy tls-unchecked'],
  ['postgresql+asyncpg://gx@127.0.0.1/gxitproxy?sslmode=disable', 'postgresql postgresql://gx@127.0.0.1/gxitproxy no-tls'],
  // libpq keywords as query arguments, SQLAlchemy's ?host=name:port, and the tuning the proxy does itself.
  ['postgresql:///gxitproxy?host=db:6543&user=gx&application_name=p1', 'postgresql postgresql://gx@db:6543/gxitproxy tls-unchecked'],
  ['postgresql://gx@/gxitproxy?host=/run/postgresql&port=5433', 'postgresql postgresql://gx@/gxitproxy?host=/run/postgresql&port=5433 no-tls'],
  ['postgresql://gx@db/gxitproxy?connect_timeout=10&keepalives=1&target_session_attrs=read-write', 'postgresql postgresql://gx@db/gxitproxy tls-unchecked'],
  ['postgresql://gx@db/gxitproxy?dbname=other', 'postgresql postgresql://gx@db/other tls-unchecked'],
  // Nothing but the scheme: libpq's defaults (OS user, database of that name, default socket directory).
  ['postgresql://', `postgresql postgresql://galaxy@/galaxy?host=${parsePostgresUrl('postgresql://', {}, MACHINE).config.host} no-tls`],
];

/** Values that cannot name a map: the start of the one line that says so. Each holds a password that must not be repeated. */
const REFUSED: ReadonlyArray<readonly [string, RegExp]> = [
  ['mysql://galaxy:SECRET@db/itmap', /^--sessions: the "mysql" dialect \(mysql:\/\/\) is not supported for the map: it can be SQLite .*PostgreSQL/],
  ['mysql+pymysql://galaxy:SECRET@db/itmap', /^--sessions: the "mysql\+pymysql" dialect/],
  ['mariadb://galaxy:SECRET@db/itmap', /^--sessions: the "mariadb" dialect/],
  ['oracle+cx_oracle://galaxy:SECRET@db:1521/itmap', /^--sessions: the "oracle\+cx_oracle" dialect/],
  ['mssql+pyodbc://galaxy:SECRET@dsn', /^--sessions: the "mssql\+pyodbc" dialect/],
  ['sqlite://', /^--sessions: an in-memory SQLite database cannot be the map/],
  ['sqlite:///:memory:?x=SECRET', /^--sessions: an in-memory SQLite database cannot be the map/],
  ['sqlite:///file:map?mode=memory&uri=true&x=SECRET', /^--sessions: an in-memory SQLite database/],
  ['sqlite://galaxy:SECRET@host/map.sqlite', /^--sessions: a sqlite:\/\/ URL names a file, never a host or a user/],
  ['sqlite:///file://otherhost/map.sqlite?uri=true&x=SECRET', /^--sessions: a SQLite URI names a file on this machine/],
  ['postgresql://gx:SECRET@db/gx?sslmode=on', /^--sessions: sslmode "on" is not one of libpq's/],
  ['postgresql://gx:SECRET@db/gx?nonsense=1', /^--sessions: "nonsense" is not a connection argument the proxy knows/],
  ['postgresql://gx:SECRET@a,b/gx', /^--sessions: several hosts/],
  ['postgresql://gx:SECRET@/gx?host=a&host=b', /^--sessions: several hosts/],
  ['postgresql://gx:SECRET@a/gx?host=b', /^--sessions: a host both before the database and in \?host=/],
  ['postgresql://gx:SECRET@db:port/gx', /^--sessions: port "port" is not a port number/],
  ['postgresql://gx:SECRET@db/gx?sslmode=verify-ca', /^--sessions: sslmode=verify-ca needs the CA/],
  ['postgresql://gx:SECRET@db/gx?sslmode=verify-full&sslrootcert=/nonexistent/SECRET.pem', /^--sessions: sslrootcert \/nonexistent\/\*\*\*\.pem cannot be read \(ENOENT\)/],
  ['postgresql://gx:SECRET@db/gx?gssencmode=require', /^--sessions: gssencmode=require/],
  ['postgresql://gx:SECRET@db/gx?service=nope-SECRET', /^--sessions: definition of service "nope-\*\*\*" not found/],
];

function refusal(value: string): SessionsUrlError {
  try {
    opened(value);
  } catch (err) {
    assert.ok(err instanceof SessionsUrlError, `${value}: ${String(err)}`);
    return err;
  }
  assert.fail(`${value} was accepted`);
}

describe('--sessions: every form Galaxy and gravity hand over', () => {
  test('URL → what is opened', () => {
    for (const [value, expected] of TABLE) assert.equal(opened(value), expected, value);
  });

  test('what cannot name a map is refused in one line that names the cause, never the password', () => {
    for (const [value, expected] of REFUSED) {
      const err = refusal(value);
      assert.match(err.message, expected, value);
      assert.doesNotMatch(err.message, /SECRET|\n/, value);
    }
  });

  test('the programmatic API takes the same forms (a SQLite URL becomes the absolute path)', () => {
    const options = resolveOptions({ sessionsPath: 'sqlite:////srv/galaxy/var/map.sqlite' });
    assert.equal(options.sessionsPath, '/srv/galaxy/var/map.sqlite');
    assert.equal(resolveOptions({ sessionsPath: 'postgresql:///gx' }).sessionsPath, 'postgresql:///gx');
    assert.throws(() => resolveOptions({ sessionsPath: 'mysql://u:SECRET@h/d' }), (err: unknown) => err instanceof SessionsUrlError && !err.message.includes('SECRET'));
  });

  test("SQLAlchemy's reading: the user to the last @, the password to the first @ after a colon, percent-decoding", () => {
    assert.deepEqual(parseSqlalchemyUrl('postgresql+psycopg2://u%40x:p%2Fw:d@h:1/db%20x?a=1+2&a=%26'), {
      dialect: 'postgresql',
      driver: 'psycopg2',
      username: 'u@x',
      password: 'p/w:d',
      host: 'h',
      port: '1',
      database: 'db x',
      query: [
        ['a', '1 2'],
        ['a', '&'],
      ],
    });
    assert.equal(parseSqlalchemyUrl('postgresql://a@b@h/db')?.username, 'a@b');
    assert.equal(parseSqlalchemyUrl('postgresql://[fe80::1]:5/db')?.host, 'fe80::1');
    assert.equal(parseSqlalchemyUrl('/srv/map.sqlite'), undefined);
  });

  test('seeded fuzz: no value crashes the parsers or comes back in a message', () => {
    // Replay with FUZZ_SEED=<seed>.
    const r = new Random(Number(process.env.FUZZ_SEED ?? 20_261_206));
    const pieces = ['postgresql', 'postgres+x', 'sqlite', 'mysql', '://', ':', '@', '/', '//', '?', '&', '=', '[', ']', '%', '%4', '%zz', '+', ',', 'host', 'port', 'sslmode', 'uri=true', 'mode=memory', 'file:', 'SECRET', 'db', '5432', '\t', '\n', 'é', '\u0000'];
    for (let i = 0; i < 5000; i++) {
      const password = `PW${i}x`;
      let value = `${r.pick(['postgresql', 'sqlite', 'mysql+pymysql', 'postgres', 'x'])}://u:${password}@`;
      const n = r.int(12);
      for (let j = 0; j < n; j++) value += r.pick(pieces);
      try {
        opened(value);
      } catch (err) {
        assert.ok(err instanceof SessionsUrlError, `${value}: ${String(err)}`);
        assert.ok(!err.message.includes(password), `${value}: ${err.message}`);
      }
    }
  });
});
