import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { ClientConfig } from 'pg';

const readCa = (file: string): string => readFileSync(file, 'utf8');
import { defaultSocketDir, isPostgresUrl, parsePostgresUrl as parseWith, PostgresPasswordError, PostgresUrlError } from '../../../../src/session-map/postgres/url.js';

/** The machine of these tests: OS user `galaxy`, no home directory in the password database. */
const MACHINE = { userName: () => 'galaxy', homeDir: () => undefined };

/** Parsed without this process's PG* variables or user (the tests below give their own). */
const parsePostgresUrl = (url: string, env: NodeJS.ProcessEnv = {}): ReturnType<typeof parseWith> => parseWith(url, env, MACHINE);

/** The settings with a password look-up (no password in the URL) shown as LOOKUP. */
function settings(config: ClientConfig): Record<string, unknown> {
  return { ...config, password: typeof config.password === 'function' ? 'LOOKUP' : config.password };
}

/** What the look-up of a URL without a password finds, for the connection pg would make. */
async function lookedUp({ config }: { config: ClientConfig }): Promise<string> {
  const lookup = config.password as unknown as (target: object) => Promise<string>;
  return lookup({ host: config.host ?? 'localhost', port: config.port ?? 5432, database: config.database, user: config.user });
}

describe('--sessions postgresql://…', () => {
  test('the schemes libpq and SQLAlchemy accept, and nothing else', () => {
    for (const url of ['postgresql://h/db', 'postgres://h/db', 'postgresql+psycopg2://h/db', 'postgresql+psycopg://h/db', 'POSTGRESQL://h/db', 'postgresql:///db']) {
      assert.equal(isPostgresUrl(url), true, url);
    }
    for (const path of ['database/interactivetools_map.sqlite', 'postgresql.sqlite', '/srv/postgres/map.sqlite', 'postgresql:/h/db', 'mysql://h/db', 'sqlite:///x.sqlite', 'postgresqlx://h/db']) {
      assert.equal(isPostgresUrl(path), false, path);
    }
  });

  test("Galaxy's training-material form: a socket directory in ?host=", () => {
    const { config, label } = parsePostgresUrl('postgresql:///gxitproxy?host=/var/run/postgresql');
    // libpq's defaults for the rest: the OS user, port 5432.
    assert.deepEqual(settings(config), { user: 'galaxy', host: '/var/run/postgresql', port: 5432, database: 'gxitproxy', password: 'LOOKUP', ssl: false });
    assert.equal(label, 'postgresql://galaxy@/gxitproxy?host=/var/run/postgresql');
  });

  test('user, password, host, port, database; the label never holds the password', () => {
    const { config, label } = parsePostgresUrl('postgres://galaxy:s3cr%40t@db.example.org:6543/gxit');
    assert.deepEqual(settings(config), { user: 'galaxy', password: 's3cr@t', host: 'db.example.org', port: 6543, database: 'gxit', ssl: { rejectUnauthorized: false } });
    assert.equal(label, 'postgresql://galaxy@db.example.org:6543/gxit');
    assert.doesNotMatch(label, /s3cr/);
  });

  test('what the URL leaves out comes from PGHOST, PGPORT, PGUSER, PGDATABASE, and the label names it', () => {
    // No host anywhere: libpq's default socket directory, as Galaxy's `postgresql:///galaxy` reaches it (never TCP to localhost).
    const socket = defaultSocketDir();
    assert.equal(socket, existsSync('/var/run/postgresql') ? '/var/run/postgresql' : '/tmp');
    // No user anywhere: the OS user (not $USER), and a database of that name, as libpq.
    assert.deepEqual(settings(parsePostgresUrl('postgresql://', { USER: 'someone-else' }).config), { user: 'galaxy', host: socket, port: 5432, database: 'galaxy', password: 'LOOKUP', ssl: false });
    assert.deepEqual(settings(parsePostgresUrl('postgresql:///gx', {}).config), { user: 'galaxy', host: socket, port: 5432, database: 'gx', password: 'LOOKUP', ssl: false });
    assert.equal(parsePostgresUrl('postgresql://', {}).label, `postgresql://galaxy@/galaxy?host=${socket}`);
    assert.deepEqual(parsePostgresUrl('postgresql://', {}).origins, { user: 'default', dbname: 'default', host: 'default', port: 'default' });
    const env = { PGHOST: 'db.example.org', PGPORT: '6543', PGUSER: 'gx_proxy', PGDATABASE: 'gxit', PGAPPNAME: 'proxy-a' };
    for (const url of ['postgresql://', 'postgresql:///', 'postgres://']) {
      const { config, label } = parsePostgresUrl(url, env);
      assert.deepEqual(settings(config), { host: 'db.example.org', port: 6543, user: 'gx_proxy', database: 'gxit', application_name: 'proxy-a', password: 'LOOKUP', ssl: { rejectUnauthorized: false } }, url);
      assert.equal(label, 'postgresql://gx_proxy@db.example.org:6543/gxit');
      assert.deepEqual(parsePostgresUrl(url, env).origins, { user: 'PGUSER', dbname: 'PGDATABASE', host: 'PGHOST', port: 'PGPORT' });
    }
    // The URL wins over the variables.
    assert.equal(parsePostgresUrl('postgresql://other@h:5433/db2', env).label, 'postgresql://other@h:5433/db2');
    assert.equal(parsePostgresUrl('postgresql://', { PGHOST: '/run/postgresql', PGPORT: '5433' }).label, 'postgresql://galaxy@/galaxy?host=/run/postgresql&port=5433');
    assert.throws(() => parsePostgresUrl('postgresql://', { PGPORT: 'x' }), /^PostgresUrlError: PGPORT: port "x" is not a port number$/);
  });

  test("the password when the URL has none: PGPASSWORD, else the password file (libpq's order), never stderr", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgpass-unit-'));
    try {
      const file = join(dir, 'passfile');
      writeFileSync(file, 'db.example.org:5432:gxit:gx_proxy:from-file\n', { mode: 0o600 });
      const url = 'postgresql://gx_proxy@db.example.org/gxit';
      assert.equal(await lookedUp(parsePostgresUrl(url, { PGPASSFILE: file })), 'from-file');
      assert.equal(await lookedUp(parsePostgresUrl(url, { PGPASSFILE: file, PGPASSWORD: 'from-env' })), 'from-env');
      assert.equal(await lookedUp(parsePostgresUrl(url, { HOME: dir, PGPASSWORD: 'from-env' })), 'from-env');
      writeFileSync(join(dir, '.pgpass'), '*:*:*:gx_proxy:from-home\n', { mode: 0o600 });
      assert.equal(await lookedUp(parsePostgresUrl(url, { HOME: dir })), 'from-home');
      // PGPASSFILE wins over ~/.pgpass.
      assert.equal(await lookedUp(parsePostgresUrl(url, { HOME: dir, PGPASSFILE: file })), 'from-file');
      // A password in the URL is used as it is: nothing is looked up.
      assert.equal(parsePostgresUrl('postgresql://gx_proxy:in-url@db.example.org/gxit', { PGPASSWORD: 'from-env' }).config.password, 'in-url');

      await assert.rejects(lookedUp(parsePostgresUrl('postgresql://someone@db.example.org/gxit', { PGPASSFILE: file })), (err: unknown) => {
        assert.ok(err instanceof PostgresPasswordError);
        assert.equal(err.code, 'ERR_GIE_POSTGRES_PASSWORD');
        assert.match(err.message, /asks for a password for role "someone" and none was given: not in the URL, no PGPASSWORD, none in .*passfile for db\.example\.org:5432:gxit:someone/);
        assert.doesNotMatch(err.message, /from-file/);
        return true;
      });
      chmodSync(file, 0o644);
      await assert.rejects(lookedUp(parsePostgresUrl(url, { PGPASSFILE: file })), (err: unknown) => {
        assert.ok(err instanceof PostgresPasswordError);
        assert.match(err.message, /passfile may be read by others \(mode 0644\), so it is not used, as libpq would not use it: chmod 0600 /);
        assert.doesNotMatch(err.message, /from-file/);
        return true;
      });
      await assert.rejects(lookedUp(parsePostgresUrl(url, {})), /no password file \(neither PGPASSFILE nor a home directory\)/);
      // No HOME (supervisord, env -i): the home directory of the OS user, as libpq.
      const homeless = parseWith(url, {}, { userName: () => 'galaxy', homeDir: () => dir });
      assert.equal(await lookedUp(homeless), 'from-home');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an SQLAlchemy driver suffix is dropped; the socket port and IPv6 hosts are kept', () => {
    assert.deepEqual(settings(parsePostgresUrl('postgresql+psycopg2://u@/gx?host=/tmp&port=5433').config), { user: 'u', host: '/tmp', port: 5433, database: 'gx', password: 'LOOKUP', ssl: false });
    assert.equal(parsePostgresUrl('postgresql+psycopg2://u@/gx?host=/tmp&port=5433').label, 'postgresql://u@/gx?host=/tmp&port=5433');
    assert.equal(parsePostgresUrl('postgresql://[::1]:5432/gx').label, 'postgresql://galaxy@[::1]:5432/gx');
  });

  test('sslmode has libpq meanings; none over a unix socket', () => {
    assert.deepEqual(parsePostgresUrl('postgresql://h/gx?sslmode=require').config.ssl, { rejectUnauthorized: false });
    assert.equal(parsePostgresUrl('postgresql://h/gx?sslmode=disable').config.ssl, false);
    assert.deepEqual(parsePostgresUrl('postgresql://h/gx?sslmode=verify-full').config.ssl, {});
    assert.equal(parsePostgresUrl('postgresql:///gx?host=/run/postgresql&sslmode=require').config.ssl, false);
    // prefer (libpq's default, also with no sslmode): TLS without a check first, then plain text
    // when the server has no TLS or refuses the login; allow: the other way round.
    const noTls = new Error('The server does not support SSL connections');
    const refused = Object.assign(new Error('no pg_hba.conf entry for host "127.0.0.1", user "u", database "gx", no encryption'), { code: '28000' });
    const unreachable = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    for (const url of ['postgresql://h/gx', 'postgresql://h/gx?sslmode=prefer']) {
      const { config, secondTry } = parsePostgresUrl(url);
      assert.deepEqual(config.ssl, { rejectUnauthorized: false }, url);
      assert.deepEqual(secondTry?.(noTls), { ssl: false }, url);
      assert.deepEqual(secondTry?.(refused), { ssl: false }, url);
      assert.equal(secondTry?.(unreachable), undefined, url);
    }
    const allow = parsePostgresUrl('postgresql://h/gx?sslmode=allow');
    assert.equal(allow.config.ssl, false);
    assert.deepEqual(allow.secondTry?.(refused), { ssl: { rejectUnauthorized: false } });
    assert.equal(allow.secondTry?.(unreachable), undefined);
    for (const url of ['postgresql://h/gx?sslmode=require', 'postgresql://h/gx?sslmode=disable', 'postgresql://h/gx?sslmode=verify-full', 'postgresql:///gx?host=/run/postgresql']) {
      assert.equal(parsePostgresUrl(url).secondTry, undefined, url);
    }
    assert.throws(() => parsePostgresUrl('postgresql://h/gx?sslmode=verify'), /sslmode "verify" is not one of libpq's/);
  });

  test('PGSSLMODE and PGSSLROOTCERT with libpq meanings when the URL has no sslmode', () => {
    // pg alone would check the certificate for PGSSLMODE=require; libpq does not.
    assert.deepEqual(parsePostgresUrl('postgresql://h/gx', { PGSSLMODE: 'require' }).config.ssl, { rejectUnauthorized: false });
    assert.equal(parsePostgresUrl('postgresql://h/gx?sslmode=disable', { PGSSLMODE: 'require' }).config.ssl, false);
    assert.equal(parsePostgresUrl('postgresql://h/gx', { PGSSLMODE: 'disable' }).config.ssl, false);
    const dir = mkdtempSync(join(tmpdir(), 'pgssl-unit-'));
    try {
      const ca = join(dir, 'ca.pem');
      writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n');
      assert.deepEqual(parsePostgresUrl('postgresql://h/gx', { PGSSLMODE: 'verify-full', PGSSLROOTCERT: ca }).config.ssl, { ca: readCa(ca) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => parsePostgresUrl('postgresql://h/gx', { PGSSLMODE: 'on' }), PostgresUrlError);
  });

  test("libpq's default root certificate ~/.postgresql/root.crt, and sslrootcert=system", () => {
    const home = mkdtempSync(join(tmpdir(), 'pgroot-unit-'));
    try {
      // No file: require checks nothing, verify-full uses the system's CAs.
      assert.deepEqual(parsePostgresUrl('postgresql://h/gx?sslmode=require', { HOME: home }).config.ssl, { rejectUnauthorized: false });
      mkdirSync(join(home, '.postgresql'));
      const root = join(home, '.postgresql', 'root.crt');
      writeFileSync(root, '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n');
      assert.deepEqual(parsePostgresUrl('postgresql://h/gx?sslmode=verify-full', { HOME: home }).config.ssl, { ca: readCa(root) });
      // require with a root certificate is verify-ca (the CA checked, not the host name).
      const requireSsl = parsePostgresUrl('postgresql://h/gx?sslmode=require', { HOME: home }).config.ssl as { ca?: string; checkServerIdentity?: unknown };
      assert.equal(requireSsl.ca, readCa(root));
      assert.equal(typeof requireSsl.checkServerIdentity, 'function');
      // No sslmode (prefer): TLS without a check, as libpq, which reads no root certificate for it.
      assert.deepEqual(parsePostgresUrl('postgresql://h/gx', { HOME: home }).config.ssl, { rejectUnauthorized: false });
      for (const [url, env] of [
        ['postgresql://h/gx?sslrootcert=system', { HOME: home }],
        ['postgresql://h/gx?application_name=a&sslrootcert=system&sslmode=verify-full', { HOME: home }],
        ['postgresql://h/gx', { HOME: home, PGSSLROOTCERT: 'system' }],
      ] as const) {
        assert.deepEqual(parsePostgresUrl(url, env).config.ssl, {}, url);
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test('a URL that cannot be used is refused without repeating it (it may hold a password)', () => {
    const bad = ['postgresql://u:hunter2@h:99999/gx', 'postgresql://u:hunter2@h/gx?sslmode=verify-full&sslrootcert=/nonexistent/hunter2.pem', 'postgresql://u:hunter2@[zz/gx'];
    for (const url of bad) {
      assert.throws(
        () => parsePostgresUrl(url),
        (err: unknown) => err instanceof PostgresUrlError && err.code === 'ERR_GIE_POSTGRES_URL' && !err.message.includes('hunter2'),
        url,
      );
    }
  });
});
