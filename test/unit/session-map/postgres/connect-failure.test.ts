import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyConnectFailure, connectContext, type ConnectContext } from '../../../../src/session-map/postgres/connect-failure.js';
import { PostgresPasswordError, parsePostgresUrl } from '../../../../src/session-map/postgres/url.js';
import { PgpassUnusableError } from '../../../../src/session-map/postgres/pgpass.js';

const CONTEXT: ConnectContext = { user: 'galaxy', userFrom: 'the URL', passwordFrom: 'PGPASSWORD', database: 'galaxy', sslmode: undefined };

const failure = (message: string, code?: string): Error => Object.assign(new Error(message), code === undefined ? {} : { code });

/** [what the attempt ended with, the reason (undefined: an outage), what the message must say]. */
const CASES: [Error, string | undefined, RegExp?][] = [
  [failure('password authentication failed for user "galaxy"', '28P01'), 'password-failed', /password authentication failed for user "galaxy" \(the password came from PGPASSWORD;.*ALTER ROLE galaxy PASSWORD/],
  [failure('role "nobody" does not exist', '28000'), 'no-role', /role "nobody" does not exist \(the user name comes from the URL\): create it \(createuser nobody\) or name another user in the URL/],
  [failure('no PostgreSQL user name specified in startup packet', '28000'), 'no-user-name', /name a user in the URL/],
  [failure('no pg_hba.conf entry for host "10.0.0.1", user "galaxy", database "galaxy", SSL encryption', '28000'), 'no-hba-entry', /pg_hba\.conf and reload it/],
  [failure('no pg_hba.conf entry for host "10.0.0.1", user "galaxy", database "galaxy", no encryption', '28000'), 'no-hba-entry', /hostssl.*sslmode=require/],
  [failure('Peer authentication failed for user "galaxy"', '28000'), 'auth-failed', /Peer authentication failed.*pg_hba\.conf/],
  [failure('database "gxit" does not exist', '3D000'), 'no-database', /database "gxit" does not exist: create it \(createdb gxit\).*interactivetoolsproxy_map/],
  [failure('permission denied for database "galaxy"', '42501'), 'no-connect-privilege', /GRANT CONNECT ON DATABASE galaxy TO galaxy/],
  [new PostgresPasswordError('the server asks for a password for role "galaxy" and none was given: not in the URL, no PGPASSWORD, none in /home/g/.pgpass for …'), 'no-password', /none was given/],
  [new PgpassUnusableError('password file /home/g/.pgpass may be read by others (mode 0644), so it is not used, as libpq would not use it: chmod 0600 /home/g/.pgpass'), 'no-password', /chmod 0600/],
  [failure('The server does not support SSL connections'), 'tls-unavailable', /The server does not support SSL connections, and sslmode=require demands TLS/],
  [failure('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'), 'tls-certificate', /sslrootcert=/],
  [failure('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'tls-certificate', /sslrootcert=/],
  [failure('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls-certificate', /sslrootcert=/],
  [failure("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'), 'tls-certificate', /verify-ca/],
  [failure('certificate has expired', 'CERT_HAS_EXPIRED'), 'tls-certificate', /renew/],
  // Outages: retried fast, warned about as before.
  [failure('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'), undefined],
  [failure('connect ENOENT /var/run/postgresql/.s.PGSQL.5432', 'ENOENT'), undefined],
  [failure('read ECONNRESET', 'ECONNRESET'), undefined],
  [failure('Connection terminated due to connection timeout'), undefined],
  [failure('Connection terminated unexpectedly'), undefined],
  [failure('terminating connection due to administrator command', '57P01'), undefined],
  [failure('terminating connection due to crash of another server process', '57P02'), undefined],
  [failure('the database system is starting up', '57P03'), undefined],
  [failure('sorry, too many clients already', '53300'), undefined],
  [failure('getaddrinfo ENOTFOUND db.example.org', 'ENOTFOUND'), undefined],
];

describe('classifyConnectFailure: a permanent cause (and its fix) or an outage', () => {
  test('each failure, by SQLSTATE, Node error code or message', () => {
    for (const [err, reason, says] of CASES) {
      const refusal = classifyConnectFailure(err, CONTEXT);
      assert.equal(refusal?.reason, reason, err.message);
      if (says !== undefined) assert.match(refusal?.message ?? '', says, err.message);
    }
  });

  test('the user name from libpq\'s default (the OS user) is said, and where the password came from', () => {
    const os: ConnectContext = { ...CONTEXT, userFrom: "the operating-system user the proxy runs as (libpq's default)", passwordFrom: 'the password file /home/g/.pgpass' };
    assert.match(classifyConnectFailure(failure('role "g" does not exist', '28000'), os)?.message ?? '', /comes from the operating-system user the proxy runs as/);
    assert.match(classifyConnectFailure(failure('password authentication failed for user "g"', '28P01'), os)?.message ?? '', /came from the password file \/home\/g\/\.pgpass/);
    assert.match(classifyConnectFailure(failure('The server does not support SSL connections'), { ...CONTEXT, sslmode: 'verify-full' })?.message ?? '', /sslmode=verify-full demands TLS/);
  });

  test('connectContext: where the user, the password and sslmode come from', () => {
    const at = (spec: string, env: NodeJS.ProcessEnv): ConnectContext => connectContext(parsePostgresUrl(spec, env, { userName: () => 'os', homeDir: () => undefined }));
    assert.deepEqual(at('postgresql://u:secret@h/db?sslmode=require', {}), { user: 'u', userFrom: 'the URL', passwordFrom: 'the URL', database: 'db', sslmode: 'require' });
    assert.deepEqual(at('postgresql://h/db?user=q', { PGPASSWORD: 'x' }), { user: 'q', userFrom: 'the URL', passwordFrom: 'PGPASSWORD', database: 'db', sslmode: undefined });
    const env = { PGUSER: 'p', HOME: '/home/p', PGSSLMODE: 'verify-full' };
    assert.deepEqual(at('postgresql://h/db', env), { user: 'p', userFrom: 'PGUSER', passwordFrom: 'the password file /home/p/.pgpass', database: 'db', sslmode: 'verify-full' });
    assert.deepEqual(at('postgresql://h/db', { USER: 'not-this' }), { user: 'os', userFrom: "the operating-system user the proxy runs as (libpq's default)", passwordFrom: 'the password file ~/.pgpass (no home directory)', database: 'db', sslmode: undefined });
  });

  test('no password in any message', () => {
    const secret = 's3cret-pw';
    const context = connectContext(parsePostgresUrl(`postgresql://u:${secret}@h/db`, {}));
    for (const [err] of CASES) assert.ok(!(classifyConnectFailure(err, context)?.message ?? '').includes(secret));
  });
});
