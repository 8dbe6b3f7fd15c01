import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parsePostgresUrl, PostgresUrlError } from '../../../../src/session-map/postgres/url.js';
import { DEFAULT_SYSCONFDIR, serviceFiles, serviceSettings } from '../../../../src/session-map/postgres/service-file.js';

const MACHINE = { userName: () => 'galaxy', homeDir: () => undefined };
const known = (k: string): boolean => ['host', 'port', 'dbname', 'user', 'sslmode'].includes(k);

describe("libpq's connection service file", () => {
  test('PGSERVICEFILE, else ~/.pg_service.conf; then PGSYSCONFDIR/pg_service.conf, else Debian libpq sysconfdir', () => {
    assert.deepEqual(serviceFiles({}, '/home/g'), ['/home/g/.pg_service.conf', `${DEFAULT_SYSCONFDIR}/pg_service.conf`]);
    assert.deepEqual(serviceFiles({ PGSERVICEFILE: '/etc/gx/svc', PGSYSCONFDIR: '/opt/pg' }, '/home/g'), ['/etc/gx/svc', '/opt/pg/pg_service.conf']);
    assert.deepEqual(serviceFiles({}, undefined), [`${DEFAULT_SYSCONFDIR}/pg_service.conf`]);
  });

  test('sections, comments, blanks around a line; the first setting wins; bad lines are refused with file and line', () => {
    const text = '# maps\n[other]\nhost=elsewhere\n\n  [gxit]  \n host=db.example.org \nport=6543\nport=1\n#x=y\n[next]\nhost=no\n';
    assert.deepEqual([...(serviceSettings(text, 'gxit', 'f', known) ?? [])], [
      ['host', 'db.example.org'],
      ['port', '6543'],
    ]);
    assert.equal(serviceSettings(text, 'absent', 'f', known), undefined);
    assert.throws(() => serviceSettings('[s]\nhost\n', 's', 'f', known), /syntax error in service file f, line 2/);
    assert.throws(() => serviceSettings('[s]\nservice=t\n', 's', 'f', known), /nested service/);
    assert.throws(() => serviceSettings('[s]\nbogus=1\n', 's', 'f', known), /"bogus" is not a libpq connection keyword/);
  });

  test('service= in the URL or PGSERVICE fills what the URL leaves out, before the PG* variables (libpq order)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgservice-unit-'));
    try {
      const user = join(dir, 'user.conf');
      mkdirSync(join(dir, 'etc'));
      writeFileSync(user, '[gxit]\nhost=db.example.org\nport=6543\ndbname=gxitproxy\nuser=gx_proxy\n');
      writeFileSync(join(dir, 'etc', 'pg_service.conf'), '[sys]\nhost=/run/postgresql\ndbname=sysmap\n');
      const env = { PGSERVICEFILE: user, PGSYSCONFDIR: join(dir, 'etc'), PGHOST: 'from-env', PGDATABASE: 'from-env' };
      const viaUrl = parsePostgresUrl('postgresql:///?service=gxit', env, MACHINE);
      assert.equal(viaUrl.label, 'postgresql://gx_proxy@db.example.org:6543/gxitproxy');
      assert.deepEqual(viaUrl.origins, { user: 'service gxit', dbname: 'service gxit', host: 'service gxit', port: 'service gxit' });
      // The URL wins over the service.
      assert.equal(parsePostgresUrl('postgresql://me@/mine?service=gxit', env, MACHINE).label, 'postgresql://me@db.example.org:6543/mine');
      // PGSERVICE, and the system file when the user's has no such service; the rest from PG* variables and defaults.
      const sys = parsePostgresUrl('postgresql://', { ...env, PGSERVICE: 'sys' }, MACHINE);
      assert.equal(sys.label, 'postgresql://galaxy@/sysmap?host=/run/postgresql');
      assert.throws(() => parsePostgresUrl('postgresql:///?service=none', env, MACHINE), (err: unknown) => err instanceof PostgresUrlError && /definition of service "none" not found \(looked in .*user\.conf, .*pg_service\.conf\)/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
