import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnProxy } from '../helpers/spawned-proxy.js';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { routedPort, startPgProxy, type PgProxy } from '../helpers/postgres-proxy.js';
import { PgCluster } from '../helpers/postgres.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';
import { PROCESS_WARNING_LOG } from '../../src/cli/process-warnings.js';
import { PG_LOG } from '../../src/session-map/postgres/connection.js';

/**
 * A permanent cause is not an outage: a wrong password, a role or a
 * database that does not exist, TLS demanded of a server without it. Each
 * time, against a real server asking for a password (scram-sha-256) and a
 * spawned proxy with the default timings: exactly one `error` line naming
 * the cause and the fix, /health and --check saying the same (--check exits
 * 1), no password anywhere; then the admin fixes it on the server and the
 * proxy connects and routes Galaxy's row without a restart, on its slow
 * backoff (5 s doubling: the second or third retry).
 */

const PASSWORD = 'refused-Pw:9@k';
const cluster = new PgCluster({ tcp: true, hostAuth: 'scram-sha-256' });
after(() => cluster.destroy());

let upstream: Promise<Upstream> | undefined;
const container = (): Promise<Upstream> => (upstream ??= startUpstream('it'));
after(async () => (await upstream)?.close());

const temps: string[] = [];
after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** Our environment without PG* variables, with an empty HOME (no ~/.pgpass). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  const home = mkdtempSync(join(tmpdir(), 'pgrefused-home-'));
  temps.push(home);
  return { ...env, HOME: home };
}

/** The server's log lines for failed logins of `role` (one per attempt). */
function failedLogins(role: string): number {
  return readFileSync(cluster.logFile, 'utf8').split('\n').filter((l) => l.includes(`password authentication failed for user "${role}"`)).length;
}

let names = 0;
const unique = (prefix: string): string => `${prefix}_${process.pid}_${++names}`;

/** Galaxy saves entry point `key` in `db` (creating its table). */
async function galaxySaves(db: string, key: string): Promise<void> {
  const { port } = await container();
  const writer = new GalaxyPgWriter(cluster.config(db));
  try {
    await writer.save({ key, token: 'tok', host: '127.0.0.1', port });
  } finally {
    await writer.close();
  }
}

/** A database with Galaxy's row `key`, and a role with `password` that may read it. */
async function mapFor(key: string, password = PASSWORD): Promise<{ db: string; role: string }> {
  const db = await cluster.createDatabase();
  await galaxySaves(db, key);
  const role = unique('proxy');
  await cluster.createRole(role, password);
  await cluster.query(`GRANT SELECT ON gxitproxy TO ${role}`, [], db);
  return { db, role };
}

/** Warnings and errors, but Node's own process warnings (DEP0060 on Node 22+). */
function complaints(proxy: PgProxy): { level: unknown; msg: unknown; reason?: unknown }[] {
  return proxy.proc.logs.lines
    .filter((l) => (l.level === 'warn' || l.level === 'error' || l.level === 'fatal' || l.level === 'raw') && l.msg !== PROCESS_WARNING_LOG)
    .map((l) => ({ level: l.level, msg: l.msg, reason: l.reason }));
}

/**
 * Starts the proxy on `url` and checks what a permanent cause must give:
 * one error line with `reason` and a detail matching `says`, the same in
 * /health (503, store.problem, lastError) and in --check (exit 1). Returns
 * the proxy and the detail.
 */
async function refused(t: { after: (fn: () => unknown) => void }, url: string, reason: string, says: RegExp): Promise<{ proxy: PgProxy; detail: string }> {
  const proxy = await startPgProxy(t, url, ['--poll-interval', '300'], { env: childEnv() });
  const line = await proxy.proc.logs.waitFor((l) => l.msg === PG_LOG.refused, 15_000);
  assert.equal(line.level, 'error');
  assert.equal(line.reason, reason);
  const detail = String(line.detail);
  assert.match(detail, says);
  assert.equal(line.store, (await proxy.health()).body.sessionMap.path);
  const health = await proxy.health();
  assert.equal(health.status, 503);
  assert.equal(health.body.sessionMap.store?.connected, false);
  assert.deepEqual(health.body.sessionMap.store?.problem, { reason, message: detail });
  // The reader thread's connection tells its read the cause once its own attempt has ended: the
  // first read may have stopped waiting for it before (a busy machine), and is then asked again.
  const lastError = await waitUntil('the read refused', async () => {
    const error = (await proxy.health()).body.sessionMap.lastError;
    return error?.reason === 'refused' && error;
  }, { timeoutMs: 15_000 });
  assert.ok(lastError.message.endsWith(detail), lastError.message);
  const check = spawnProxy(['--sessions', url, '--check'], { env: childEnv() });
  const { code } = await check.exit(30_000);
  const out = check.stdout + check.stderr;
  assert.equal(code, 1, out);
  assert.ok(out.includes(`NOT READABLE (refused): session map ${health.body.sessionMap.path}: ${detail}`), out);
  for (const text of [out, proxy.proc.stdout + proxy.proc.stderr, JSON.stringify(health.body)]) {
    assert.ok(!text.includes(PASSWORD) && !text.includes(encodeURIComponent(PASSWORD)), text);
  }
  assert.deepEqual(complaints(proxy), [{ level: 'error', msg: PG_LOG.refused, reason }]);
  return { proxy, detail };
}

/** After the admin's fix: connected (the first-connection line), routed, and still that one error line. */
async function fixedWithoutRestart(t: { diagnostic: (s: string) => void }, proxy: PgProxy, key: string, reason: string, fixedAt: number): Promise<void> {
  await proxy.proc.logs.waitFor((l) => l.msg === PG_LOG.connected, 45_000);
  t.diagnostic(`${reason}: connected ${Date.now() - fixedAt} ms after the fix`);
  await routedPort(proxy, key, 'tok', 15_000);
  const health = await proxy.health();
  assert.equal(health.status, 200);
  assert.equal(health.body.sessionMap.store?.problem, null);
  assert.equal(health.body.sessionMap.lastError, null);
  assert.deepEqual(complaints(proxy), [{ level: 'error', msg: PG_LOG.refused, reason }]);
}

describe('a permanent cause: one error naming the fix, /health and --check the same, picked up without a restart', { concurrency: true }, () => {
  test('a wrong password (28P01), then ALTER ROLE … PASSWORD', { timeout: 120_000 }, async (t) => {
    if (!(await cluster.ready(t))) return;
    const { db, role } = await mapFor('pwfixed', 'the-old-one');
    const url = cluster.tcpUrl(db, role, PASSWORD);
    const spawnedAt = Date.now();
    const { proxy } = await refused(t, url, 'password-failed', new RegExp(`password authentication failed for user "${role}" \\(the password came from the URL;.*ALTER ROLE ${role} PASSWORD`));
    // The slow backoff: retries no sooner than 2.5 s, 7.5 s, 17.5 s… after the first attempt (the
    // fast one would have made five by 1.5 s). The proxy has two connections, the watch's and the
    // reader thread's, each on its own backoff; the start-up read tries the thread's at once (a
    // read does not wait out a backoff). --check made one attempt of its own.
    const elapsed = Date.now() - spawnedAt;
    const retries = [2500, 7500, 17_500, 37_500].filter((ms) => ms <= elapsed).length;
    const allowed = 1 + 2 * (1 + retries) + 1;
    assert.ok(failedLogins(role) <= allowed, `${failedLogins(role)} failed logins in ${elapsed} ms`);
    // A retry for the same cause logs nothing more.
    await waitUntil("the proxy's first retry", () => failedLogins(role) >= 3 || undefined, { timeoutMs: 15_000, everyMs: 50 });
    assert.deepEqual(complaints(proxy), [{ level: 'error', msg: PG_LOG.refused, reason: 'password-failed' }]);
    await cluster.query(`ALTER ROLE ${role} PASSWORD '${PASSWORD}'`);
    await fixedWithoutRestart(t, proxy, 'pwfixed', 'password-failed', Date.now());
  });

  test('a role that does not exist (28000, over the socket), then CREATE ROLE', { timeout: 120_000 }, async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    await galaxySaves(db, 'rolefixed');
    const role = unique('ghost');
    // Over the unix socket (trust): with a password method the server would not say that the role is missing.
    const url = cluster.url(db, role);
    const { proxy } = await refused(t, url, 'no-role', new RegExp(`role "${role}" does not exist \\(the user name comes from the URL\\): create it \\(createuser ${role}\\)`));
    await cluster.createRole(role, PASSWORD);
    await cluster.query(`GRANT SELECT ON gxitproxy TO ${role}`, [], db);
    await fixedWithoutRestart(t, proxy, 'rolefixed', 'no-role', Date.now());
  });

  test('a database that does not exist (3D000), then CREATE DATABASE and Galaxy saves', { timeout: 120_000 }, async (t) => {
    if (!(await cluster.ready(t))) return;
    const role = unique('proxy');
    await cluster.createRole(role, PASSWORD);
    const db = unique('later');
    const url = cluster.tcpUrl(db, role, PASSWORD);
    const { proxy } = await refused(t, url, 'no-database', new RegExp(`database "${db}" does not exist: create it \\(createdb ${db}\\).*interactivetoolsproxy_map`));
    await cluster.query(`CREATE DATABASE ${db} OWNER ${role}`);
    const fixedAt = Date.now();
    await galaxySaves(db, 'dbfixed');
    await cluster.query(`GRANT SELECT ON gxitproxy TO ${role}`, [], db);
    await fixedWithoutRestart(t, proxy, 'dbfixed', 'no-database', fixedAt);
  });

  test('sslmode=require against a server without TLS', { timeout: 60_000 }, async (t) => {
    if (!(await cluster.ready(t))) return;
    const { db, role } = await mapFor('tlsnone');
    await refused(t, `${cluster.tcpUrl(db, role, PASSWORD)}?sslmode=require`, 'tls-unavailable', /The server does not support SSL connections, and sslmode=require demands TLS: turn ssl on/);
  });
});
