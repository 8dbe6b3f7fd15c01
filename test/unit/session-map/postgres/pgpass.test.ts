import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pgpassLookup, pgpassPassword, pgpassPath, PgpassUnusableError } from '../../../../src/session-map/postgres/pgpass.js';

const dir = mkdtempSync(join(tmpdir(), 'pgpass-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("libpq's password file", () => {
  test('PGPASSFILE, else ~/.pgpass', () => {
    assert.equal(pgpassPath({ PGPASSFILE: '/etc/gx/pass', HOME: '/home/g' }), '/etc/gx/pass');
    assert.equal(pgpassPath({ HOME: '/home/g' }), '/home/g/.pgpass');
    assert.equal(pgpassPath({ PGPASSFILE: '', HOME: '/home/g' }), '/home/g/.pgpass');
    assert.equal(pgpassPath({}), undefined);
  });

  test('fields, wildcards, escapes, comments, CRLF; the first matching line wins', () => {
    const text = [
      '# host:port:database:user:password',
      'db.example.org:5432:gxit:gx_proxy:first',
      'db.example.org:5432:gxit:gx_proxy:second',
      '*:6543:*:gx_proxy:any-host',
      'db.example.org:5432:*:other:p\\:w\\\\d:with:colons\r',
      'short:line',
      '',
    ].join('\n');
    const at = (host: string, port: number, database: string, user: string): string | undefined => pgpassLookup(text, { host, port, database, user });
    assert.equal(at('db.example.org', 5432, 'gxit', 'gx_proxy'), 'first');
    assert.equal(at('elsewhere', 6543, 'x', 'gx_proxy'), 'any-host');
    // A backslash escapes ':' and '\' in every field; an unescaped ':' ends the password (libpq ignores the rest).
    assert.equal(at('db.example.org', 5432, 'anything', 'other'), 'p:w\\d');
    assert.equal(at('db.example.org', 5433, 'gxit', 'gx_proxy'), undefined);
    assert.equal(at('short', 5432, 'line', 'x'), undefined);
    assert.equal(pgpassLookup('h:5432:db:u:pw', { host: 'h', database: 'db', user: 'u' }), 'pw', 'port 5432 when none is given');
  });

  test("a unix socket in the default directory (or no host) is 'localhost'; another directory is itself", () => {
    const text = 'localhost:5432:gxit:galaxy:local\n/srv/pg/sock:5432:gxit:galaxy:sockdir\n';
    for (const host of ['/var/run/postgresql', '/run/postgresql', '/tmp', '', undefined]) {
      assert.equal(pgpassLookup(text, { host, port: 5432, database: 'gxit', user: 'galaxy' }), 'local', String(host));
    }
    assert.equal(pgpassLookup(text, { host: '/srv/pg/sock', port: 5432, database: 'gxit', user: 'galaxy' }), 'sockdir');
  });

  test('a file the group or others may read, or that is not a file, is not used (libpq would not), and says so', async () => {
    const file = join(dir, 'open');
    writeFileSync(file, '*:*:*:*:secret-pw\n', { mode: 0o640 });
    await assert.rejects(pgpassPassword(file, { host: 'h' }), (err: unknown) => {
      assert.ok(err instanceof PgpassUnusableError);
      assert.equal(err.code, 'ERR_GIE_PGPASS_UNUSABLE');
      assert.match(err.message, /may be read by others \(mode 0640\).*chmod 0600/);
      assert.doesNotMatch(err.message, /secret-pw/);
      return true;
    });
    const folder = join(dir, 'folder');
    mkdirSync(folder, { mode: 0o700 });
    await assert.rejects(pgpassPassword(folder, { host: 'h' }), /is not a plain file/);
    const good = join(dir, 'good');
    writeFileSync(good, '*:*:*:*:secret-pw\n', { mode: 0o600 });
    assert.equal(await pgpassPassword(good, { host: 'h' }), 'secret-pw');
    assert.equal(await pgpassPassword(join(dir, 'missing'), { host: 'h' }), undefined);
  });
});
