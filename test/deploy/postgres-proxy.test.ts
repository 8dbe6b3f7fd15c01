import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { spawnProxy } from '../helpers/spawned-proxy.js';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { installTriggerCli, requestEntryPoint, routedPort, startPgProxy } from '../helpers/postgres-proxy.js';
import { PgCluster } from '../helpers/postgres.js';
import { TcpRelay } from '../helpers/tcp-relay.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';
import { PROCESS_WARNING_LOG } from '../../src/cli/process-warnings.js';

/**
 * The CLI with `--sessions postgresql://…` against a real throw-away cluster:
 * Galaxy's writes with and without a trigger, the table created after the
 * proxy started, the database down at start, the admin's --install-trigger
 * and --check, and passwords kept out of everything the proxy says.
 */

const PASSWORD = 'pw-Zq8!x@y';
const cluster = new PgCluster({ tcp: true, hostAuth: 'scram-sha-256' });
after(() => cluster.destroy());

let upstream: Promise<Upstream> | undefined;
/** The one container every entry point of this file leads to. */
function container(): Promise<Upstream> {
  return (upstream ??= startUpstream('it'));
}
after(async () => (await upstream)?.close());

function writerFor(t: { after: (fn: () => unknown) => void }, db: string): GalaxyPgWriter {
  const writer = new GalaxyPgWriter(cluster.config(db));
  t.after(() => writer.close());
  return writer;
}

describe('galaxy-gie-proxy --sessions postgresql://…', () => {
  test("gx-it-proxy's README trigger: every Galaxy save and removal is followed at once (LISTEN only)", async (t) => {
    if (!(await cluster.ready(t))) return;
    const { port } = await container();
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.save({ key: 'readme1', token: 'tok', host: '127.0.0.1', port });
    await writer.installReadmeTrigger();
    const proxy = await startPgProxy(t, cluster.url(db), ['--poll-interval', '0']);
    await routedPort(proxy, 'readme1', 'tok');
    await writer.save({ key: 'readme2', token: 'tok', host: '127.0.0.1', port });
    await routedPort(proxy, 'readme2', 'tok');
    await writer.remove('readme1');
    await waitUntil('readme1 refused', async () => (await requestEntryPoint(proxy.port, 'readme1', 'tok')).status === 404 || undefined);
    const { body } = await proxy.health();
    assert.equal(body.sessionMap.store?.connected, true);
    assert.ok((body.sessionMap.store?.notifications ?? 0) >= 2);
  });

  test('no trigger at all: the poll (--poll-interval) picks Galaxy saves up', async (t) => {
    if (!(await cluster.ready(t))) return;
    const { port } = await container();
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.save({ key: 'poll1', token: 'tok', host: '127.0.0.1', port });
    const proxy = await startPgProxy(t, cluster.url(db), ['--poll-interval', '200']);
    await routedPort(proxy, 'poll1', 'tok');
    await writer.save({ key: 'poll2', token: 'tok', host: '127.0.0.1', port });
    await routedPort(proxy, 'poll2', 'tok');
    const { body } = await proxy.health();
    assert.equal(body.sessionMap.store?.changeDetection, 'row-versions');
    assert.equal(body.sessionMap.store?.notifications, 0);
  });

  test('--install-trigger: creates the table if Galaxy has not, reports, and changes then arrive by notification', async (t) => {
    if (!(await cluster.ready(t))) return;
    const { port } = await container();
    const db = await cluster.createDatabase();
    const first = await installTriggerCli(cluster.url(db));
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /gxitproxy created with Galaxy's columns/);
    const again = await installTriggerCli(cluster.url(db));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already there, 0 rows/);
    const proxy = await startPgProxy(t, cluster.url(db), ['--poll-interval', '0']);
    const writer = writerFor(t, db);
    await writer.save({ key: 'ours1', token: 'tok', host: '127.0.0.1', port });
    await routedPort(proxy, 'ours1', 'tok');
    const { body } = await proxy.health();
    assert.equal(body.sessionMap.store?.changeDetection, 'counter');
    // Galaxy's DELETE + INSERT in one transaction: one notification.
    assert.equal(body.sessionMap.store?.notifications, 1);
    const file = await installTriggerCli('/tmp/not-a-database.sqlite');
    assert.equal(file.code, 2);
    assert.match(file.stderr, /--install-trigger needs --sessions postgresql:/);
  });

  test('the table does not exist yet at start: one info line naming the cause and the fix, /health and --check the same, no-map (503) until Galaxy creates it, then routed', async (t) => {
    if (!(await cluster.ready(t))) return;
    const { port } = await container();
    const db = await cluster.createDatabase();
    const proxy = await startPgProxy(t, cluster.url(db), ['--poll-interval', '200']);
    const note = await proxy.proc.logs.waitFor((l) => l.msg === 'session map not ready yet; routing nothing until Galaxy writes it', 10_000);
    assert.equal(note.level, 'info');
    assert.equal(note.reason, 'no-table');
    assert.match(String(note.detail), /table gxitproxy does not exist yet: Galaxy creates it when the first Interactive Tool starts.*if one has started, --sessions names another database than Galaxy's interactivetoolsproxy_map/);
    const before = await proxy.health();
    assert.equal(before.status, 503);
    assert.equal(before.body.status, 'no-map');
    assert.deepEqual(before.body.sessionMap.lastError, { reason: 'no-table', message: note.detail });
    const check = spawnProxy(['--sessions', cluster.url(db), '--check']);
    const { code } = await check.exit(30_000);
    assert.equal(code, 1, check.stdout + check.stderr);
    assert.ok(check.stdout.includes(`NOT READABLE (no-table): ${String(note.detail)}`), check.stdout);
    const writer = writerFor(t, db);
    await writer.save({ key: 'late1', token: 'tok', host: '127.0.0.1', port });
    await routedPort(proxy, 'late1', 'tok');
    assert.equal((await proxy.health()).status, 200);
    assert.equal(proxy.proc.logs.lines.filter((l) => l.level === 'warn' && l.msg !== PROCESS_WARNING_LOG).length, 0, 'a table not there yet is no warning');
  });

  test('LISTEN only (--poll-interval 0) and no table yet: found once Galaxy creates it and saves, without a restart', async (t) => {
    // Galaxy's CREATE TABLE notifies nobody: the watch looks every 5 s while the table is missing.
    if (!(await cluster.ready(t))) return;
    const { port } = await container();
    const db = await cluster.createDatabase();
    const proxy = await startPgProxy(t, cluster.url(db), ['--poll-interval', '0']);
    await proxy.proc.logs.waitFor((l) => l.msg === 'session map not ready yet; routing nothing until Galaxy writes it', 10_000);
    const writer = writerFor(t, db);
    const saved = Date.now();
    await writer.save({ key: 'late0', token: 'tok', host: '127.0.0.1', port });
    await routedPort(proxy, 'late0', 'tok', 15_000);
    t.diagnostic(`routed ${Date.now() - saved} ms after Galaxy created the table`);
  });

  test('the database unreachable at start: the proxy starts anyway, says no-map, and routes once it answers', async (t) => {
    if (!(await cluster.ready(t))) return;
    const { port } = await container();
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.save({ key: 'down1', token: 'tok', host: '127.0.0.1', port });
    const relay = new TcpRelay(cluster.port);
    await relay.start();
    t.after(() => relay.close());
    await cluster.createRole('proxy_down', PASSWORD);
    await cluster.query(`GRANT SELECT ON gxitproxy TO proxy_down`, [], db);
    relay.blackHole();
    const proxy = await startPgProxy(t, cluster.tcpUrl(db, 'proxy_down', PASSWORD, relay.port), ['--poll-interval', '0']);
    const health = await proxy.health();
    assert.equal(health.status, 503);
    assert.equal(health.body.sessionMap.store?.connected, false);
    relay.restore();
    await routedPort(proxy, 'down1', 'tok', 20_000);
    assert.equal((await proxy.health()).status, 200);
    const warnings = proxy.proc.logs.lines.filter((l) => l.level === 'warn' && l.msg !== PROCESS_WARNING_LOG);
    assert.deepEqual(
      warnings.map((l) => l.msg),
      ['session map database unreachable; routing nothing until it answers, retrying'],
    );
  });

  test('passwords never appear in logs, /health, --check or errors', async (t) => {
    if (!(await cluster.ready(t))) return;
    const { port } = await container();
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.save({ key: 'pw1', token: 'tok', host: '127.0.0.1', port });
    await cluster.createRole('proxy_pw', PASSWORD);
    await cluster.query('GRANT SELECT ON gxitproxy TO proxy_pw', [], db);
    const url = cluster.tcpUrl(db, 'proxy_pw', PASSWORD);
    const encoded = encodeURIComponent(PASSWORD);
    const secretFree = (text: string, what: string): void => {
      assert.ok(!text.includes(PASSWORD) && !text.includes(encoded), `${what} holds the password: ${text}`);
    };

    const proxy = await startPgProxy(t, url, ['--poll-interval', '0']);
    await routedPort(proxy, 'pw1', 'tok');
    const health = await proxy.health();
    assert.equal(health.body.sessionMap.path, `postgresql://proxy_pw@127.0.0.1:${cluster.port}/${db}`);
    secretFree(JSON.stringify(health.body), '/health');
    await cluster.terminateBackends(db);
    await proxy.proc.logs.waitFor((l) => l.msg === 'session map database reconnected; reading the map again', 20_000);
    secretFree(proxy.proc.stdout + proxy.proc.stderr, 'the log');

    const check = spawnProxy(['--sessions', url, '--check']);
    const checked = await check.exit(20_000);
    assert.equal(checked.code, 0, check.stderr);
    assert.match(check.stdout, /postgresql gxitproxy/);
    secretFree(check.stdout + check.stderr, '--check');

    const wrong = cluster.tcpUrl(db, 'proxy_pw', `${PASSWORD}-wrong`);
    const badCheck = spawnProxy(['--sessions', wrong, '--check']);
    const bad = await badCheck.exit(20_000);
    assert.equal(bad.code, 1);
    assert.match(badCheck.stdout, /password authentication failed/);
    secretFree(badCheck.stdout + badCheck.stderr, '--check with a wrong password');

    const badPort = spawnProxy(['--sessions', `postgresql://proxy_pw:${encoded}@127.0.0.1:99999/${db}`]);
    const refused = await badPort.exit(10_000);
    assert.equal(refused.code, 2);
    secretFree(badPort.stdout + badPort.stderr, 'a refused URL');
  });
});
