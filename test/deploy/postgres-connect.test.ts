import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnProxy } from '../helpers/spawned-proxy.js';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { routedPort, startPgProxy, type PgProxy } from '../helpers/postgres-proxy.js';
import { PgCluster } from '../helpers/postgres.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { PROCESS_WARNING_LOG } from '../../src/cli/process-warnings.js';

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
const tlsCluster = new PgCluster({ tcp: true, tls: true, hba: ['hostssl all all 127.0.0.1/32 scram-sha-256'] });
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

/** The proxy's backend in `db`: is it encrypted, and how. */
async function backendSsl(cluster: PgCluster, db: string): Promise<{ ssl: boolean; version: string | null }[]> {
  const { rows } = await cluster.query<{ ssl: boolean; version: string | null }>(
    `SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
      WHERE a.datname = $1 AND a.application_name = 'galaxy-gie-proxy'`,
    [db],
  );
  return rows;
}

const TLS_PASSWORD = 'tls-Pw:9@k/x';

describe('--sessions postgresql://…?sslmode=…: TLS against a server that takes only TLS', () => {
  test('sslmode=require: connected encrypted, routed, the password nowhere', async (t) => {
    if (!(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsreq', TLS_PASSWORD);
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=require`;
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    await routedPort(proxy, 'tlsreq', 'tok');
    const backends = await backendSsl(tlsCluster, db);
    assert.equal(backends.length, 1, JSON.stringify(backends));
    assert.equal(backends[0]?.ssl, true);
    assert.match(backends[0]?.version ?? '', /^TLSv1\.[23]$/);
    assert.deepEqual(warnings(proxy), []);
    await assertProxySecretFree(proxy, TLS_PASSWORD);
    const checked = await check(url, childEnv());
    assert.equal(checked.code, 0, checked.out);
    assertSecretFree(TLS_PASSWORD, checked.out, '--check');
  });

  test('sslmode=verify-full with sslrootcert: the certificate checked, connected, routed', async (t) => {
    if (!(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsfull', TLS_PASSWORD);
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(tlsCluster.caFile)}`;
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    await routedPort(proxy, 'tlsfull', 'tok');
    assert.equal((await backendSsl(tlsCluster, db))[0]?.ssl, true);
    assert.deepEqual(warnings(proxy), []);
    await assertProxySecretFree(proxy, TLS_PASSWORD);
  });

  test('sslmode=verify-full with a CA that did not sign the server: no-map (503), one warning saying why, still trying; --check fails', async (t) => {
    if (!(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlswrong', TLS_PASSWORD);
    const otherDir = tempHome();
    const { makeCa } = await import('../helpers/tls-certs.js');
    const other = makeCa(otherDir, 'other-ca');
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(other.certFile)}`;
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    const warning = await proxy.proc.logs.waitFor((l) => l.level === 'warn' && l.msg !== PROCESS_WARNING_LOG, 15_000);
    const health = await proxy.health();
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'no-map');
    process.stderr.write(`${JSON.stringify(warning)}\n${JSON.stringify(health.body)}\n`);
    const checked = await check(url, childEnv());
    process.stderr.write(`${checked.code} ${checked.out}\n`);
    assertSecretFree(TLS_PASSWORD, checked.out, '--check');
    await assertProxySecretFree(proxy, TLS_PASSWORD);
  });

  test('sslmode=disable against a server that takes only TLS: refused, saying so', async (t) => {
    if (!(await tlsCluster.ready(t))) return;
    const { db, role } = await mapFor(tlsCluster, 'tlsoff', TLS_PASSWORD);
    const url = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=disable`;
    const checked = await check(url, childEnv());
    process.stderr.write(`${checked.code} ${checked.out}\n`);
    assertSecretFree(TLS_PASSWORD, checked.out, '--check');
    const none = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}`;
    const checkedNone = await check(none, childEnv());
    process.stderr.write(`no sslmode: ${checkedNone.code} ${checkedNone.out}\n`);
    const prefer = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=prefer`;
    const checkedPrefer = await check(prefer, childEnv());
    process.stderr.write(`prefer: ${checkedPrefer.code} ${checkedPrefer.out}\n`);
    const allow = `${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}?sslmode=allow`;
    const checkedAllow = await check(allow, childEnv());
    process.stderr.write(`allow: ${checkedAllow.code} ${checkedAllow.out}\n`);
    const envMode = await check(`${tlsCluster.tcpUrl(db, role, TLS_PASSWORD)}`, childEnv({ PGSSLMODE: 'require' }));
    process.stderr.write(`PGSSLMODE=require: ${envMode.code} ${envMode.out}\n`);
  });
});

const SPECIAL = 'p@ss:w/rd%?#&= ü+\'"';

describe('where the password comes from, against a server that asks for one (scram-sha-256)', () => {
  test('in the URL, percent-encoded special characters', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwurl', SPECIAL);
    const url = pwCluster.tcpUrl(db, role, SPECIAL);
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    await routedPort(proxy, 'pwurl', 'tok');
    assert.deepEqual(warnings(proxy), []);
    await assertProxySecretFree(proxy, SPECIAL);
    const checked = await check(url, childEnv());
    assert.equal(checked.code, 0, checked.out);
    assertSecretFree(SPECIAL, checked.out, '--check');
  });

  test('PGPASSWORD, and PGHOST, PGPORT, PGUSER, PGDATABASE for what the URL leaves out', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwenv', SPECIAL);
    const env = childEnv({ PGHOST: '127.0.0.1', PGPORT: String(pwCluster.port), PGUSER: role, PGDATABASE: db, PGPASSWORD: SPECIAL });
    for (const url of ['postgresql:///', 'postgresql://', 'postgres://']) {
      const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env });
      await routedPort(proxy, 'pwenv', 'tok');
      assert.deepEqual(warnings(proxy), []);
      await assertProxySecretFree(proxy, SPECIAL);
      process.stderr.write(`${url}: ${JSON.stringify((await proxy.health()).body.sessionMap.path)}\n`);
      proxy.proc.kill();
      const checked = await check(url, env);
      assert.equal(checked.code, 0, checked.out);
      assertSecretFree(SPECIAL, checked.out, '--check');
    }
  });

  test('~/.pgpass (0600) and PGPASSFILE', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwfile', SPECIAL);
    const escaped = SPECIAL.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
    const home = tempHome();
    const line = `127.0.0.1:${pwCluster.port}:${db}:${role}:${escaped}\n`;
    writeFileSync(join(home, '.pgpass'), `# a comment\nother:5432:*:*:nope\n${line}`, { mode: 0o600 });
    const url = `postgresql://${role}@127.0.0.1:${pwCluster.port}/${db}`;
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv({ HOME: home }) });
    await routedPort(proxy, 'pwfile', 'tok');
    process.stderr.write(`pgpass warnings: ${JSON.stringify(proxy.proc.logs.lines.filter((l) => l.level !== 'info'))}\n`);
    await assertProxySecretFree(proxy, SPECIAL);
    const checked = await check(url, childEnv({ HOME: home }));
    assert.equal(checked.code, 0, checked.out);
    assertSecretFree(SPECIAL, checked.out, '--check');
    proxy.proc.kill();

    const elsewhere = join(tempHome(), 'passfile');
    writeFileSync(elsewhere, line, { mode: 0o600 });
    const viaEnv = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv({ PGPASSFILE: elsewhere }) });
    await routedPort(viaEnv, 'pwfile', 'tok');
    await assertProxySecretFree(viaEnv, SPECIAL);
    viaEnv.proc.kill();

    chmodSync(elsewhere, 0o644);
    const open = await check(url, childEnv({ PGPASSFILE: elsewhere }));
    process.stderr.write(`0644: ${open.code} ${open.out}\n`);
    const none = await check(url, childEnv());
    process.stderr.write(`none: ${none.code} ${none.out}\n`);
  });

  test('a wrong password: a clear error, without the password', async (t) => {
    if (!(await pwCluster.ready(t))) return;
    const { db, role } = await mapFor(pwCluster, 'pwwrong', SPECIAL);
    const wrong = `${SPECIAL}-wrong`;
    const url = pwCluster.tcpUrl(db, role, wrong);
    const proxy = await startPgProxy(t, url, ['--poll-interval', '0'], { env: childEnv() });
    const warning = await proxy.proc.logs.waitFor((l) => l.level === 'warn' && l.msg !== PROCESS_WARNING_LOG, 15_000);
    process.stderr.write(`${JSON.stringify(warning)}\n`);
    await assertProxySecretFree(proxy, wrong);
    const checked = await check(url, childEnv());
    process.stderr.write(`${checked.code} ${checked.out}\n`);
    assertSecretFree(wrong, checked.out, '--check');
    const env = await check(`postgresql://${role}@127.0.0.1:${pwCluster.port}/${db}`, childEnv({ PGPASSWORD: wrong }));
    process.stderr.write(`PGPASSWORD wrong: ${env.code} ${env.out}\n`);
    assertSecretFree(wrong, env.out, '--check');
  });
});
