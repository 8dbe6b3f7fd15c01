import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isPostgresUrl, parsePostgresUrl, PostgresUrlError } from '../../../src/session-map/postgres-url.js';

describe('--sessions postgresql://…', () => {
  test('the schemes libpq and SQLAlchemy accept, and nothing else', () => {
    for (const url of ['postgresql://h/db', 'postgres://h/db', 'postgresql+psycopg2://h/db', 'postgresql+psycopg://h/db', 'POSTGRESQL://h/db', 'postgresql:///db']) {
      assert.equal(isPostgresUrl(url), true, url);
    }
    for (const path of ['database/interactivetools_map.sqlite', 'postgresql.sqlite', '/srv/postgres/map.sqlite', 'postgresql:/h/db', 'mysql://h/db']) {
      assert.equal(isPostgresUrl(path), false, path);
    }
  });

  test("Galaxy's training-material form: a socket directory in ?host=", () => {
    const { config, label } = parsePostgresUrl('postgresql:///gxitproxy?host=/var/run/postgresql');
    assert.deepEqual(config, { host: '/var/run/postgresql', database: 'gxitproxy' });
    assert.equal(label, 'postgresql:///gxitproxy?host=/var/run/postgresql');
  });

  test('user, password, host, port, database; the label never holds the password', () => {
    const { config, label } = parsePostgresUrl('postgres://galaxy:s3cr%40t@db.example.org:6543/gxit');
    assert.deepEqual(config, { user: 'galaxy', password: 's3cr@t', host: 'db.example.org', port: 6543, database: 'gxit' });
    assert.equal(label, 'postgresql://galaxy@db.example.org:6543/gxit');
    assert.doesNotMatch(label, /s3cr/);
  });

  test('what the URL leaves out is left to PG* variables and ~/.pgpass (pg reads them)', () => {
    assert.deepEqual(parsePostgresUrl('postgresql://').config, {});
    assert.deepEqual(parsePostgresUrl('postgresql:///gx').config, { database: 'gx' });
    assert.equal(parsePostgresUrl('postgresql://').label, 'postgresql:///');
  });

  test('an SQLAlchemy driver suffix is dropped; the socket port and IPv6 hosts are kept', () => {
    assert.deepEqual(parsePostgresUrl('postgresql+psycopg2://u@/gx?host=/tmp&port=5433').config, { user: 'u', host: '/tmp', port: 5433, database: 'gx' });
    assert.equal(parsePostgresUrl('postgresql+psycopg2://u@/gx?host=/tmp&port=5433').label, 'postgresql://u@/gx?host=/tmp&port=5433');
    assert.equal(parsePostgresUrl('postgresql://[::1]:5432/gx').label, 'postgresql://[::1]:5432/gx');
  });

  test('sslmode has libpq meanings; none over a unix socket', () => {
    assert.deepEqual(parsePostgresUrl('postgresql://h/gx?sslmode=require').config.ssl, { rejectUnauthorized: false });
    assert.equal(parsePostgresUrl('postgresql://h/gx?sslmode=disable').config.ssl, false);
    assert.deepEqual(parsePostgresUrl('postgresql://h/gx?sslmode=verify-full').config.ssl, {});
    assert.equal(parsePostgresUrl('postgresql:///gx?host=/run/postgresql&sslmode=require').config.ssl, undefined);
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
