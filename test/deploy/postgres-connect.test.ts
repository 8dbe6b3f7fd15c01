import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnProxy } from '../helpers/spawned-proxy.js';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { routedPort, startPgProxy, type PgProxy } from '../helpers/postgres-proxy.js';
import { PgCluster } from '../helpers/postgres.js';
import { makeCa, requireOpenssl } from '../helpers/tls-certs.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';
import { PROCESS_WARNING_LOG } from '../../src/cli/process-warnings.js';
import { PG_LOG } from '../../src/session-map/postgres/connection.js';

/**
 * How the proxy finds and logs in to the map's database, against real
 * servers: TLS (`sslmode` require, verify-full with the right and a wrong CA,
 * disable against a server that only takes TLS), and every place a password
 * can come from (the URL, percent-encoded; PGPASSWORD; ~/.pgpass; PGPASSFILE)
 * with PGHOST, PGPORT, PGUSER and PGDATABASE filling what the URL leaves out.
 * Each time: the entry point is routed, and the password is in none of the
 * proxy's output, its --check output or /health.
 */

/** A server that takes TCP only with TLS, and then only with a password. */
const tlsCluster = new PgCluster({ tcp: true, tls: true, hba: ['hostssl all all 127.0.0.1/32 scram-sha-256'], settings: { log_connections: 'on' } });
/** A server that asks for a password over TCP (no TLS). */
const pwCluster = new PgCluster({ tcp: true, hostAuth: 'scram-sha-256' });
after(() => Promise.all([tlsCluster.destroy(), pwCluster.destroy()]));

let upstream: Promise<Upstream> | undefined;
function container(): Promise<Upstream> {
  return (upstream ??= startUpstream('it'));
}
after(async () => (await upstream)?.close());

const temps: string[] = [];
after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});
function tempHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgconn-home-'));
  temps.push(dir);
  return dir;
}

let roles = 0;
/** A fresh database with one entry point (`key`), and a role that may read it with `password`. */
async function mapFor(cluster: PgCluster, key: string, password: string): Promise<{ db: string; role: string }> {
  const { port } = await container();
  const db = await cluster.createDatabase();
  const writer = new GalaxyPgWriter(cluster.config(db));
  try {
    await writer.save({ key, token: 'tok', host: '127.0.0.1', port });
  } finally {
    await writer.close();
  }
  const role = `proxy_${process.pid}_${++roles}`;
  await cluster.createRole(role, password);
  await cluster.query(`GRANT SELECT ON gxitproxy TO ${role}`, [], db);
  return { db, role };
}

/** The environment of a child: ours without any PG* variable or HOME's ~/.pgpass, plus `extra`. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, HOME: tempHome(), ...extra };
}

/** Fails when `secret` (as typed, or percent-encoded) is anywhere in `text`. */
function assertSecretFree(secret: string, text: string, what: string): void {
  for (const form of new Set([secret, encodeURIComponent(secret)])) {
    assert.ok(!text.includes(form), `${what} holds the password: ${text}`);
  }
}

/** `--check` on `url`: exit code and everything it printed. */
async function check(url: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  const proc = spawnProxy(['--sessions', url, '--check'], { env });
  const { code } = await proc.exit(30_000);
  return { code, out: proc.stdout + proc.stderr };
}

/** Everything the proxy printed and /health, all free of `secret`. */
async function assertProxySecretFree(proxy: PgProxy, secret: string): Promise<void> {
  assertSecretFree(secret, JSON.stringify((await proxy.health()).body), '/health');
  assertSecretFree(secret, proxy.proc.stdout + proxy.proc.stderr, "the proxy's output");
}

/** Warnings other than Node's own process warnings (DEP0060 on Node 22+). */
function warnings(proxy: PgProxy): string[] {
  return proxy.proc.logs.lines.filter((l) => (l.level === 'warn' || l.level === 'raw') && l.msg !== PROCESS_WARNING_LOG).map((l) => l.msg);
}

/** The proxy's backends in `db`: are they encrypted, and how. */
async function backendSsl(cluster: PgCluster, db: string): Promise<{ ssl: boolean; version: string | null }[]> {
  const { rows } = await cluster.query<{ ssl: boolean; version: string | null }>(
    `SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
      WHERE a.datname = $1 AND a.application_name = 'galaxy-gie-proxy'`,
    [db],
  );
  return rows;
}

const TLS_PASSWORD = 'tls-Pw:9@k/x';

/** Lines in the server's log for TCP connections received (log_connections): how often a client tried. */
function tcpAttempts(cluster: PgCluster): number {
  return readFileSync(cluster.logFile, 'utf8').split('\n').filter((l) => l.includes('connection received: host=127.0.0.1')).length;
}

describe('--sessions postgresql://…?sslmode=…: TLS against a server that takes only TLS (hostssl, scram-sha-256)', () => {
  test('sslmode=require: connected encrypted, routed, the password nowhere', async (t) => {
    if (!requireOpenssl(t) || !(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsreq', TLS_PASSWORD);
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=require`;
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    await routedPort(proxy, 'tlsreq', 'tok');
    // Every connection of the proxy encrypted: the watch's and the reader thread's (which reads the map).
    const backends = await waitUntil('two backends', async () => {
      const now = await backendSsl(tlsCluster, db);
      return now.length >= 2 && now;
    }, { timeoutMs: 10_000 });
    assert.equal(backends.length, 2, JSON.stringify(backends));
    for (const backend of backends) {
      assert.equal(backend.ssl, true);
      assert.match(backend.version ?? '', /^TLSv1\.[23]$/);
    }
    assert.deepEqual(warnings(proxy), []);
    await assertProxySecretFree(proxy, TLS_PASSWORD);
    const checked = await check(url, childEnv());
    assert.equal(checked.code, 0, checked.out);
    assertSecretFree(TLS_PASSWORD, checked.out, '--check');
  });

  test('sslmode=verify-full with sslrootcert (or ~/.postgresql/root.crt), and verify-ca: the certificate checked, connected encrypted, routed', async (t) => {
    if (!requireOpenssl(t) || !(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsfull', TLS_PASSWORD);
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(tlsCluster.caFile)}`;
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    await routedPort(proxy, 'tlsfull', 'tok');
    assert.equal((await backendSsl(tlsCluster, db))[0]?.ssl, true);
    assert.deepEqual(warnings(proxy), []);
    await assertProxySecretFree(proxy, TLS_PASSWORD);
    const checked = await check(url, childEnv());
    assert.equal(checked.code, 0, checked.out);
    // verify-ca: the CA checked, not the host name.
    const verifyCa = await check(`${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=verify-ca&sslrootcert=${encodeURIComponent(tlsCluster.caFile)}`, childEnv());
    assert.equal(verifyCa.code, 0, verifyCa.out);
    // libpq's default root certificate: ~/.postgresql/root.crt.
    const home = tempHome();
    mkdirSync(join(home, '.postgresql'));
    copyFileSync(tlsCluster.caFile, join(home, '.postgresql', 'root.crt'));
    const defaultRoot = await check(`${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=verify-full`, childEnv({ HOME: home }));
    assert.equal(defaultRoot.code, 0, defaultRoot.out);
    const noRoot = await check(`${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=verify-full`, childEnv());
    assert.equal(noRoot.code, 1, noRoot.out);
  });

  test('PGSSLMODE=verify-full and PGSSLROOTCERT (libpq variables) when the URL has no sslmode; PGSSLMODE=require encrypts without a CA', async (t) => {
    if (!requireOpenssl(t) || !(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsenv', TLS_PASSWORD);
    const url = tlsCluster.tcpUrl(db, role, TLS_PASSWORD);
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: tlsCluster.caFile }) });
    await routedPort(proxy, 'tlsenv', 'tok');
    assert.equal((await backendSsl(tlsCluster, db))[0]?.ssl, true);
    assert.deepEqual(warnings(proxy), []);
    // libpq's require checks no certificate (pg alone would, and fail on this private CA).
    const checked = await check(url, childEnv({ PGSSLMODE: 'require' }));
    assert.equal(checked.code, 0, checked.out);
    const wrongCa = await check(url, childEnv({ PGSSLMODE: 'verify-full' }));
    assert.equal(wrongCa.code, 1, wrongCa.out);
  });

  test('sslmode=verify-full with a CA that did not sign the server: starts, no-map (503), one error naming the fix, keeps trying slowly; --check fails; no password', async (t) => {
    if (!requireOpenssl(t) || !(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlswrong', TLS_PASSWORD);
    const other = makeCa(tempHome(), 'other-ca');
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(other.certFile)}`;
    const before = tcpAttempts(tlsCluster);
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    const error = await proxy.proc.logs.waitFor((l) => l.level === 'error', 15_000);
    assert.equal(error.msg, PG_LOG.refused);
    assert.equal(error.reason, 'tls-certificate');
    // Node 24 adds a hint of its own after the reason (`; if the root CA is installed locally, …`).
    assert.match(String(error.detail), /\(UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate[^)]*\): give the CA that signed it as sslrootcert=/);
    const health = await proxy.health();
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'no-map');
    assert.equal(health.body.sessionMap.store?.connected, false);
    assert.deepEqual(health.body.sessionMap.store?.problem, { reason: 'tls-certificate', message: error.detail });
    assert.equal(health.body.sessionMap.lastError?.message, `session map ${health.body.sessionMap.path}: ${String(error.detail)}`);
    // It keeps trying, slowly (the server logs every TCP connection it receives: 2.5 to 5 s, then 5 to 10 s), and says so once.
    await waitUntil('two more attempts', () => tcpAttempts(tlsCluster) >= before + 3 || undefined, { timeoutMs: 30_000, everyMs: 100 });
    assert.deepEqual(warnings(proxy), []);
    assert.equal(proxy.proc.logs.lines.filter((l) => l.level === 'error').length, 1);
    assert.equal(proxy.proc.stderr, '');
    await assertProxySecretFree(proxy, TLS_PASSWORD);
    const checked = await check(url, childEnv());
    assert.equal(checked.code, 1, checked.out);
    assert.ok(checked.out.includes(`NOT READABLE (refused): session map ${health.body.sessionMap.path}: ${String(error.detail)}`), checked.out);
    assertSecretFree(TLS_PASSWORD, checked.out, '--check');
  });

  test('sslmode=disable against a server that takes only TLS: refused, saying so, without the password', async (t) => {
    if (!requireOpenssl(t) || !(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsoff', TLS_PASSWORD);
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=disable`;
    const refusal = new RegExp(`no pg_hba.conf entry for host "127.0.0.1", user "${role}", database "${db}", no encryption`);
    const checked = await check(url, childEnv());
    assert.equal(checked.code, 1, checked.out);
    assert.match(checked.out, refusal);
    assertSecretFree(TLS_PASSWORD, checked.out, '--check');
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    const error = await proxy.proc.logs.waitFor((l) => l.level === 'error', 15_000);
    assert.equal(error.msg, PG_LOG.refused);
    assert.equal(error.reason, 'no-hba-entry');
    assert.match(String(error.detail), refusal);
    assert.match(String(error.detail), /hostssl\), use sslmode=require .* instead of sslmode=disable/);
    assert.deepEqual(warnings(proxy), []);
    assert.equal((await proxy.health()).status, 503);
    await assertProxySecretFree(proxy, TLS_PASSWORD);
  });
});

describe("libpq's second try: sslmode=prefer (and none: libpq's default) and allow", () => {
  test('no sslmode, prefer or allow against a server that takes only TLS: connected encrypted, as libpq (and Galaxy) would', async (t) => {
    if (!requireOpenssl(t) || !(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsdef', TLS_PASSWORD);
    for (const query of ['', '?sslmode=prefer', '?sslmode=allow']) {
      const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}${query}`;
      const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
      await routedPort(proxy, 'tlsdef', 'tok');
      // Both connections (the watch's, the reader thread's) made the second try, and got in encrypted.
      const backends = await waitUntil('two backends', async () => {
        const now = await backendSsl(tlsCluster, db);
        return now.length >= 2 && now;
      }, { timeoutMs: 10_000 });
      assert.deepEqual(backends.map((b) => b.ssl), [true, true], query);
      assert.deepEqual(warnings(proxy), [], query);
      await assertProxySecretFree(proxy, TLS_PASSWORD);
      proxy.proc.kill();
      await proxy.proc.exit(5000);
      await waitUntil('the backend gone', async () => (await backendSsl(tlsCluster, db)).length === 0 || undefined, { timeoutMs: 10_000 });
    }
  });

  test('no sslmode, prefer or allow against a server without TLS: connected in plain text', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'plaindef', SPECIAL);
    for (const query of ['', '?sslmode=prefer', '?sslmode=allow']) {
      const url = `${pwCluster.tcpUrl(db, role, SPECIAL)}${query}`;
      const checked = await check(url, childEnv());
      assert.equal(checked.code, 0, `${query}: ${checked.out}`);
      assertSecretFree(SPECIAL, checked.out, '--check');
    }
    const required = await check(`${pwCluster.tcpUrl(db, role, SPECIAL)}?sslmode=require`, childEnv());
    assert.equal(required.code, 1, required.out);
    assert.match(required.out, /NOT READABLE \(refused\): .*The server does not support SSL connections, and sslmode=require demands TLS/);
  });
});

/** Every character a URL must percent-encode, and some a password file must escape. */
const SPECIAL = 'p@ss:w/rd%?#&= ü+\'"\\';

describe('where the password comes from, against a server that asks for one (scram-sha-256)', () => {
  test('in the URL, with percent-encoded special characters', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwurl', SPECIAL);
    const url = pwCluster.tcpUrl(db, role, SPECIAL);
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    await routedPort(proxy, 'pwurl', 'tok');
    assert.deepEqual(warnings(proxy), []);
    assert.equal(proxy.proc.stderr, '');
    await assertProxySecretFree(proxy, SPECIAL);
    const checked = await check(url, childEnv());
    assert.equal(checked.code, 0, checked.out);
    assertSecretFree(SPECIAL, checked.out, '--check');
  });

  test('PGPASSWORD, with PGHOST, PGPORT, PGUSER and PGDATABASE for what the URL leaves out; /health names them', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwenv', SPECIAL);
    const env = childEnv({ PGHOST: '127.0.0.1', PGPORT: String(pwCluster.port), PGUSER: role, PGDATABASE: db, PGPASSWORD: SPECIAL });
    for (const url of ['postgresql:///', 'postgresql://', 'postgres://']) {
      const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env });
      await routedPort(proxy, 'pwenv', 'tok');
      assert.deepEqual(warnings(proxy), []);
      assert.equal(proxy.proc.stderr, '');
      assert.equal((await proxy.health()).body.sessionMap.path, `postgresql://${role}@127.0.0.1:${pwCluster.port}/${db}`);
      await assertProxySecretFree(proxy, SPECIAL);
      proxy.proc.kill();
      const checked = await check(url, env);
      assert.equal(checked.code, 0, checked.out);
      assertSecretFree(SPECIAL, checked.out, '--check');
    }
  });

  test('~/.pgpass (mode 0600) and PGPASSFILE: routed with no warning; a file others may read, or no password at all, is said clearly', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwfile', SPECIAL);
    const escaped = SPECIAL.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
    const line = `127.0.0.1:${pwCluster.port}:${db}:${role}:${escaped}\n`;
    const home = tempHome();
    writeFileSync(join(home, '.pgpass'), `# host:port:database:user:password\nelsewhere:5432:*:*:not-this\n${line}`, { mode: 0o600 });
    const url = `postgresql://${role}@127.0.0.1:${pwCluster.port}/${db}`;
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv({ HOME: home }) });
    await routedPort(proxy, 'pwfile', 'tok');
    // No warning of any kind (pg's own look-up raises a deprecation warning), but
    // http-proxy's DEP0060, which Node 22 and later raise on every proxied request.
    assert.deepEqual(proxy.proc.logs.lines.filter((l) => l.level !== 'info' && l.level !== 'debug' && l.code !== 'DEP0060'), []);
    assert.equal(proxy.proc.stderr, '');
    await assertProxySecretFree(proxy, SPECIAL);
    const checked = await check(url, childEnv({ HOME: home }));
    assert.equal(checked.code, 0, checked.out);
    assertSecretFree(SPECIAL, checked.out, '--check');
    proxy.proc.kill();

    const passfile = join(tempHome(), 'passfile');
    writeFileSync(passfile, line, { mode: 0o600 });
    const viaEnv = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv({ PGPASSFILE: passfile }) });
    await routedPort(viaEnv, 'pwfile', 'tok');
    assert.deepEqual(warnings(viaEnv), []);
    await assertProxySecretFree(viaEnv, SPECIAL);
    viaEnv.proc.kill();

    chmodSync(passfile, 0o644);
    const open = await check(url, childEnv({ PGPASSFILE: passfile }));
    assert.equal(open.code, 1, open.out);
    assert.match(open.out, /may be read by others \(mode 0644\), so it is not used, as libpq would not use it: chmod 0600 /);
    assertSecretFree(SPECIAL, open.out, '--check');
    const none = await check(url, childEnv());
    assert.equal(none.code, 1, none.out);
    assert.match(none.out, new RegExp(`asks for a password for role "${role}" and none was given: not in the URL, no PGPASSWORD, none in .*\\.pgpass`));
  });

  test('a wrong password, from the URL, PGPASSWORD or ~/.pgpass: a clear error, without the password', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwwrong', SPECIAL);
    const wrong = `${SPECIAL}-wrong`;
    const failed = new RegExp(`password authentication failed for user "${role}"`);
    const url = pwCluster.tcpUrl(db, role, wrong);
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    const error = await proxy.proc.logs.waitFor((l) => l.level === 'error', 15_000);
    assert.equal(error.reason, 'password-failed');
    assert.match(String(error.detail), failed);
    assert.match(String(error.detail), /the password came from the URL/);
    assert.deepEqual(warnings(proxy), []);
    assert.equal((await proxy.health()).status, 503);
    await assertProxySecretFree(proxy, wrong);
    const plain = `postgresql://${role}@127.0.0.1:${pwCluster.port}/${db}`;
    const home = tempHome();
    writeFileSync(join(home, '.pgpass'), `*:*:*:*:${wrong.replaceAll('\\', '\\\\').replaceAll(':', '\\:')}\n`, { mode: 0o600 });
    for (const [what, target, env] of [
      ['the URL', url, childEnv()],
      ['PGPASSWORD', plain, childEnv({ PGPASSWORD: wrong })],
      ['~/.pgpass', plain, childEnv({ HOME: home })],
    ] as const) {
      const checked = await check(target, env);
      assert.equal(checked.code, 1, `${what}: ${checked.out}`);
      assert.match(checked.out, failed, what);
      assert.match(checked.out, new RegExp(`NOT READABLE \\(refused\\): .*the password came from ${what === '~/.pgpass' ? 'the password file .*/\\.pgpass' : what}`), what);
      assertSecretFree(wrong, checked.out, `--check, password from ${what}`);
    }
  });
});

describe('no host anywhere: libpq default socket directory', () => {
  // Root only: the cluster runs as `postgres`, which may create sockets in /var/run/postgresql (Debian's package makes it so).
  const usable = existsSync('/var/run/postgresql') && process.getuid?.() === 0;
  const socketCluster = new PgCluster({ extraSocketDirs: usable ? ['/var/run/postgresql'] : [] });
  after(() => socketCluster.destroy());

  test('postgresql:///db with only PGPORT reaches the server on /var/run/postgresql, as Galaxy (libpq) does', async (t) => {
    if (!usable) {
      if (process.env.CI) assert.fail('/var/run/postgresql is missing or not writable here (apt-get install -y postgresql, run as root)');
      t.skip('needs /var/run/postgresql and root');
      return;
    }
    if (!(await socketCluster.ready(t))) return;
    const { port } = await container();
    const db = await socketCluster.createDatabase();
    const writer = new GalaxyPgWriter(socketCluster.config(db));
    try {
      await writer.save({ key: 'nohost', token: 'tok', host: '127.0.0.1', port });
    } finally {
      await writer.close();
    }
    // pg alone would try localhost over TCP, where this server does not listen.
    const proxy = await startPgProxy(t, `postgresql:///${db}`, [], { env: childEnv({ PGPORT: String(socketCluster.port), PGUSER: 'postgres' }) });
    await routedPort(proxy, 'nohost', 'tok');
    const { body } = await proxy.health();
    assert.equal(body.sessionMap.path, `postgresql://postgres@/${db}?host=/var/run/postgresql&port=${socketCluster.port}`);
  });
});
