/**
 * The training material's map URL, `postgresql:///gxitproxy?host=/var/run/postgresql`,
 * verbatim, in the environments admins run the proxy in: no variables at all
 * (`env -i`), the repository's supervisord recipe (supervisord passes no
 * USER or HOME), and a non-root user whose `$USER` says something else.
 * libpq (Galaxy's psycopg2) takes the user from the process's OS user and
 * the database from... the URL here; the proxy must connect as the same
 * role. Needs root (the cluster's socket in /var/run/postgresql, on libpq's
 * default port 5432, and a switch to `nobody`).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { request } from '../helpers/client.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { IT_PREFIX } from '../helpers/it-proxy.js';
import { waitForLogLines } from '../helpers/log-file.js';
import { REPO_ROOT } from '../helpers/package.js';
import { freePort } from '../helpers/ports.js';
import { routedPort } from '../helpers/postgres-proxy.js';
import { PgCluster } from '../helpers/postgres.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { MAIN_JS, ProxyProcess, spawnProxy } from '../helpers/spawned-proxy.js';
import { startSupervisord } from '../helpers/supervisord.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const TRAINING_URL = 'postgresql:///gxitproxy?host=/var/run/postgresql';
const SOCKET_DIR = '/var/run/postgresql';
const EP = { key: 'defaultsk1', token: 'defaultstok1' };

/** Root, libpq's default socket directory present, and nothing else on its port 5432. */
const usable = process.getuid?.() === 0 && existsSync(SOCKET_DIR) && !existsSync(join(SOCKET_DIR, '.s.PGSQL.5432'));
const cluster = new PgCluster({ port: 5432, extraSocketDirs: usable ? [SOCKET_DIR] : [] });
after(() => cluster.destroy());

let container: Upstream | undefined;
after(() => container?.close());

let prepared: Promise<void> | undefined;
/** Database `gxitproxy` with one entry point, readable by the OS user of this process and by `nobody`, each a role of its own name. */
async function ready(t: TestContext): Promise<boolean> {
  if (!usable) {
    if (process.env.CI === 'true') assert.fail(`needs root and ${SOCKET_DIR} without a server on 5432 (apt-get install -y postgresql; no cluster running)`);
    t.skip(`needs root and ${SOCKET_DIR} without a server on 5432`);
    return false;
  }
  if (!(await cluster.ready(t))) return false;
  await (prepared ??= (async () => {
    container = await startUpstream('it');
    await cluster.query('CREATE DATABASE gxitproxy');
    const writer = new GalaxyPgWriter(cluster.config('gxitproxy'));
    try {
      await writer.save({ ...EP, host: '127.0.0.1', port: container.port });
    } finally {
      await writer.close();
    }
    for (const role of new Set([userInfo().username, 'nobody'])) {
      if (role !== 'postgres') await cluster.query(`CREATE ROLE "${role}" LOGIN`);
      await cluster.query(`GRANT SELECT ON gxitproxy TO "${role}"`, [], 'gxitproxy');
    }
  })());
  return true;
}

/** Waits until the proxies connected to the map (application_name galaxy-gie-proxy) are logged in as `roles`, and returns them. */
async function connectedRoles(roles: string[]): Promise<string[]> {
  let seen: string[] = [];
  await waitUntil(
    `connections as ${roles.join(', ')}`,
    async () => {
      const { rows } = await cluster.query<{ usename: string }>(
        "SELECT usename FROM pg_stat_activity WHERE datname = 'gxitproxy' AND application_name = 'galaxy-gie-proxy' ORDER BY backend_start",
      );
      seen = rows.map((r) => r.usename);
      return JSON.stringify(seen) === JSON.stringify(roles) || undefined;
    },
    { timeoutMs: 10_000, everyMs: 50 },
  ).catch(() => {});
  return seen;
}

/** Starts `proc` (listening on `port`), requires the entry point routed, and returns the label of its start-up line. */
async function routes(t: TestContext, proc: ProxyProcess, port: number): Promise<string> {
  t.after(() => proc.kill());
  const started = await proc.started(15_000);
  await routedPort({ port, proc }, EP.key, EP.token, 15_000);
  return started.sessions as string;
}

describe("the training material's URL with libpq's defaults", () => {
  test('under env -i (no USER, no HOME, no variable at all): the OS user, as libpq', async (t) => {
    if (!(await ready(t))) return;
    const port = await freePort();
    const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', TRAINING_URL], { env: {} });
    const label = await routes(t, proc, port);
    const me = userInfo().username;
    assert.equal(label, `postgresql://${me}@/gxitproxy?host=${SOCKET_DIR}`);
    // Two connections, the watch's and the reader thread's (which makes every
    // read, so routing shows it got in): the thread resolves libpq's defaults
    // as the main thread does, with no USER or HOME either.
    assert.deepEqual(await connectedRoles([me, me]), [me, me]);
    proc.kill();
    await proc.exited;
    // --check in the same bare environment.
    const check = spawnProxy(['--sessions', TRAINING_URL, '--check'], { env: {} });
    assert.equal((await check.exit(15_000)).code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`session map  postgresql://${me}@/gxitproxy\\?host=${SOCKET_DIR}\\n[^]*entry points 1 routable`));
    // Every scheme SQLAlchemy takes for PostgreSQL reaches the same map (the driver is ignored).
    for (const scheme of ['postgres', 'postgresql+psycopg2', 'postgresql+psycopg', 'postgresql+pg8000', 'postgresql+asyncpg']) {
      const other = spawnProxy(['--sessions', TRAINING_URL.replace('postgresql', scheme), '--check'], { env: {} });
      assert.equal((await other.exit(15_000)).code, 0, `${scheme}: ${other.stdout}${other.stderr}`);
      assert.match(other.stdout, /entry points 1 routable/, scheme);
    }
  });

  test("libpq's other defaults: the database named after the user; a connection service from PGSERVICE", async (t) => {
    if (!(await ready(t))) return;
    const me = userInfo().username;
    const dir = tempDir('gie-pg-service-');
    t.after(() => dir.remove());
    // A database named after the OS user, holding the map (as `createdb` with no name makes it).
    if (me !== 'postgres') {
      await cluster.query(`CREATE DATABASE "${me}"`);
      const writer = new GalaxyPgWriter(cluster.config(me));
      try {
        await writer.save({ ...EP, host: '127.0.0.1', port: container!.port });
      } finally {
        await writer.close();
      }
      await cluster.query(`GRANT SELECT ON gxitproxy TO "${me}"`, [], me);
      const check = spawnProxy(['--sessions', `postgresql://?host=${SOCKET_DIR}`, '--check'], { env: {} });
      assert.equal((await check.exit(15_000)).code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, new RegExp(`session map  postgresql://${me}@/${me}\\?host=${SOCKET_DIR}\\n[^]*entry points 1 routable`));
    }
    // Everything from a service file named by PGSERVICE and PGSERVICEFILE; the URL says nothing but the scheme.
    const serviceFile = join(dir.dir, 'pg_service.conf');
    writeFileSync(serviceFile, `# the map\n[gxit]\nhost=${SOCKET_DIR}\ndbname=gxitproxy\n`);
    const viaService = spawnProxy(['--sessions', 'postgresql://', '--check'], { env: { PGSERVICE: 'gxit', PGSERVICEFILE: serviceFile } });
    assert.equal((await viaService.exit(15_000)).code, 0, viaService.stdout + viaService.stderr);
    assert.match(viaService.stdout, new RegExp(`session map  postgresql://${me}@/gxitproxy\\?host=${SOCKET_DIR}\\n[^]*entry points 1 routable`));
    // A running proxy too: the reader thread (which makes the reads) finds the service as the main thread does.
    const port = await freePort();
    const running = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', 'postgresql://'], { env: { PGSERVICE: 'gxit', PGSERVICEFILE: serviceFile } });
    assert.equal(await routes(t, running, port), `postgresql://${me}@/gxitproxy?host=${SOCKET_DIR}`);
    // Both connections to the service's database (without the service, the thread would reach the database named after the user).
    assert.deepEqual(await connectedRoles([me, me]), [me, me]);
    running.kill();
    await running.exited;
    // A service that is not defined: exit 2 at once, naming the files looked in.
    const missing = spawnProxy(['--sessions', 'postgresql:///?service=nope'], { env: { PGSERVICEFILE: serviceFile } });
    assert.equal((await missing.exit(15_000)).code, 2);
    assert.match(missing.stderr, /^error: --sessions: definition of service "nope" not found \(looked in .*pg_service\.conf/);
  });

  test("as a non-root user whose $USER names another role: the OS user's role, not $USER's", async (t) => {
    if (!(await ready(t))) return;
    const port = await freePort();
    const args = [MAIN_JS, '--ip', '127.0.0.1', '--port', String(port), '--sessions', TRAINING_URL];
    // As nobody, with only a misleading USER: the superuser's name.
    const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim()));
    const proc = new ProxyProcess(spawn(process.execPath, args, { uid, gid, env: { USER: 'postgres' }, stdio: ['ignore', 'pipe', 'pipe'] }));
    const label = await routes(t, proc, port);
    assert.equal(label, `postgresql://nobody@/gxitproxy?host=${SOCKET_DIR}`);
    // The watch's connection and the reader thread's, both as the OS user.
    assert.deepEqual(await connectedRoles(['nobody', 'nobody']), ['nobody', 'nobody']);
  });

  test("under the README's supervisord recipe (supervisord passes no USER, no HOME)", { timeout: 90_000 }, async (t) => {
    if (!(await ready(t))) return;
    const tmp = tempDir('gie-supervisord-pg-');
    t.after(() => tmp.remove());
    const galaxyRoot = join(tmp.dir, 'galaxy');
    mkdirSync(galaxyRoot, { recursive: true });
    mkdirSync(join(tmp.dir, 'log'));
    const port = await freePort();
    const proxyLog = join(tmp.dir, 'log', 'gx_it_proxy.log');
    let program = readmeBlock('ini', '[program:gx_it_proxy]');
    program = adapt(program, '/opt/galaxy-gie-proxy/bin/gx-it-proxy.js', join(REPO_ROOT, 'bin', 'gx-it-proxy.js'));
    program = adapt(program, 'GALAXY_ROOT', galaxyRoot);
    program = adapt(program, '--port 4002', `--port ${port}`);
    program = adapt(program, '--sessions database/interactivetools_map.sqlite', `--sessions '${TRAINING_URL}'`);
    program = adapt(program, 'GALAXY_USER', userInfo().username);
    program = adapt(program, 'startsecs       = 5', 'startsecs       = 1');
    program = adapt(program, '/var/log/galaxy/gx_it_proxy.log', proxyLog);
    const sv = await startSupervisord(t, tmp.dir, 'gx_it_proxy', program);
    if (sv === undefined) return;
    const running = await sv.waitForState('RUNNING');
    const [listening] = await waitForLogLines(proxyLog, (l) => l.msg === 'proxy listening' && l.pid === running.pid, 1, 15_000);
    assert.equal(listening?.sessions, `postgresql://${userInfo().username}@/gxitproxy?host=${SOCKET_DIR}`);
    await waitForLogLines(proxyLog, (l) => l.msg === 'session map reloaded' && l.pid === running.pid, 1, 15_000);
    const reply = await request(port, { path: `${IT_PREFIX}/${EP.key}/${EP.token}/tree` });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(await sv.stop(), 0);
  });
});
