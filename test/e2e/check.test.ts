/**
 * `--check`: the spawned CLI reads the map once, reports on it in plain text
 * and exits 0 when the map is readable, 1 when not; it never prints a whole
 * cookie value.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GalaxySqliteWriter, GXPROXY2, galaxyJson, oldestGalaxyJson, tempDir } from '../helpers/galaxy-map.js';
import { MAIN_JS, ProxyProcess, spawnProxy, startSpawnedProxy } from '../helpers/spawned-proxy.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream } from '../helpers/upstream.js';
import { DAEMON_LOG } from '../../src/daemon.js';
import { cookie, request } from '../helpers/client.js';
import { sessionTag } from '../../src/log.js';

const BIN = fileURLToPath(new URL('../../bin/galaxy-gie-proxy.js', import.meta.url));
// Long, credential-like cookie values: only their first characters may be printed.
const ALICE = 'a11ce5e55104c00c1e7a1b2c3d4e5f60';
const BOB = 'b0b5e55104c00c1e7a1b2c3d4e5f6071';

async function run(child: ProxyProcess): Promise<{ code: number | null; out: string }> {
  const { code } = await child.exit(10_000);
  return { code, out: child.stdout };
}

/** A map with alice → a live container, bob → a closed port, and two unusable rows. */
async function sqliteMap(t: TestContext): Promise<string> {
  const tmp = tempDir();
  const up = await startUpstream('alive');
  t.after(async () => {
    await up.close();
    tmp.remove();
  });
  const path = join(tmp.dir, 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession(ALICE, '127.0.0.1', up.port);
  galaxy.addSession(BOB, '127.0.0.1', await freePort());
  galaxy.exec("INSERT INTO gxproxy2 (key, host, port) VALUES ('nohost', NULL, 8002), ('bad', 'h', 70000)");
  return path;
}

test('--check on a readable SQLite map: format, counts, skipped entries, containers; exit 0', async (t) => {
  const path = await sqliteMap(t);
  const child = spawnProxy(['--check', '--sessions', path]);
  t.after(() => child.kill());
  const { code, out } = await run(child);
  assert.equal(code, 0, out + child.stderr);
  const lines = out.trimEnd().split('\n');
  assert.equal(lines[0], `session map  ${path}`);
  assert.equal(lines[1], 'format       sqlite gxproxy2');
  assert.equal(lines[2], 'sessions     2 routable');
  assert.equal(lines[3], 'skipped      2 (missing host: 1, port out of range: 1)');
  assert.match(lines[4], /^containers {3}1 of the 2 most recently added answer a TCP connect \(time-out 2000 ms\):$/);
  // Most recent first: bob (closed port), then alice (answers).
  assert.match(lines[5], new RegExp(`^ {2}${sessionTag(BOB)} +127\\.0\\.0\\.1:\\d+ +NO ANSWER: ECONNREFUSED$`));
  assert.match(lines[6], new RegExp(`^ {2}${sessionTag(ALICE)} +127\\.0\\.0\\.1:\\d+ +answers in \\d+ ms$`));
  assert.equal(lines[7], 'result       readable');
  assert.equal(lines.length, 8);
  for (const secret of [ALICE, BOB, ALICE.slice(0, 6), BOB.slice(0, 6)]) assert.ok(!out.includes(secret), 'no cookie value, nor its start');
  assert.ok(!out.includes(DAEMON_LOG.listening), 'nothing was started');
});

test('--check-limit bounds the containers tried (0: none); the bin entry and lib/main.js as an executable work too', async (t) => {
  const path = await sqliteMap(t);
  const one = spawnProxy(['--check', '--check-limit', '1', '--sessions', path]);
  const none = spawnProxy(['--check', '--check-limit', '0', '--sessions', path], { executable: true });
  const viaBin = new ProxyProcess(spawn(process.execPath, [BIN, '--check', '--sessions', path], { stdio: ['ignore', 'pipe', 'pipe'] }));
  t.after(() => [one, none, viaBin].forEach((c) => c.kill()));
  const [a, b, c] = await Promise.all([run(one), run(none), run(viaBin)]);
  assert.equal(a.code, 0);
  assert.match(a.out, /0 of the 1 most recently added/);
  assert.ok(a.out.includes(sessionTag(BOB)));
  assert.ok(!a.out.includes(sessionTag(ALICE)));
  assert.equal(b.code, 0);
  assert.doesNotMatch(b.out, /containers/);
  assert.match(b.out, /sessions {5}2 routable/);
  assert.equal(c.code, 0);
  assert.match(c.out, /result {7}readable/);
});

test('--check on JSON maps: the current and the oldest shape', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  writeFileSync(join(tmp.dir, 'current.json'), galaxyJson([[ALICE, '127.0.0.1', await freePort()]]));
  writeFileSync(join(tmp.dir, 'oldest.json'), oldestGalaxyJson([[BOB, '127.0.0.1', await freePort()], ['x', '127.0.0.1', 0]]));
  const current = spawnProxy(['--check', '--sessions', join(tmp.dir, 'current.json')]);
  const oldest = spawnProxy(['--check', '--sessions', join(tmp.dir, 'oldest.json')]);
  t.after(() => [current, oldest].forEach((c) => c.kill()));
  const [a, b] = await Promise.all([run(current), run(oldest)]);
  assert.equal(a.code, 0);
  assert.match(a.out, /format {7}json\n/);
  assert.equal(b.code, 0);
  assert.match(b.out, /format {7}json host:port\n/);
  assert.match(b.out, /skipped {6}1 \(port out of range: 1\)/);
});

test('--check on a map that cannot be read: why, and exit 1', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  writeFileSync(join(tmp.dir, 'half.json'), galaxyJson([[ALICE, '127.0.0.1', 8001]]).slice(0, 20));
  writeFileSync(join(tmp.dir, 'garbage.sqlite'), 'this is not an SQLite database, not at all');
  const cases: [string, RegExp][] = [
    [join(tmp.dir, 'missing.sqlite'), /NOT READABLE \(missing\): session map .*missing\.sqlite does not exist/],
    [join(tmp.dir, 'half.json'), /NOT READABLE \(incomplete\): session map .*half\.json is not complete JSON/],
    [join(tmp.dir, 'garbage.sqlite'), /NOT READABLE \(corrupt\)/],
  ];
  const children = cases.map(([path]) => spawnProxy(['--check', '--sessions', path]));
  t.after(() => children.forEach((c) => c.kill()));
  const results = await Promise.all(children.map(run));
  results.forEach(({ code, out }, i) => {
    assert.equal(code, 1, out);
    assert.match(out, cases[i][1]);
    assert.ok(!out.includes(ALICE));
  });
});

test('--check-limit must be a whole number: usage error, exit 2', async (t) => {
  const child = spawnProxy(['--check', '--check-limit', 'ten']);
  t.after(() => child.kill());
  const { code } = await child.exit(5000);
  assert.equal(code, 2);
  assert.match(child.stderr, /--check-limit/);
});

const asNobody = process.getuid?.() === 0 && existsSync('/usr/sbin/runuser');

test(
  'a WAL map the proxy may not create <map>-shm for: a clear reason; readable while the writer keeps -shm there',
  { skip: asNobody ? false : 'needs root and runuser, to run the proxy as a user who cannot write the directory' },
  async (t) => {
    const tmp = tempDir();
    t.after(() => tmp.remove());
    chmodSync(tmp.dir, 0o755);
    const path = join(tmp.dir, 'session_map.sqlite');
    const writer = new Database(path);
    writer.pragma('journal_mode = WAL');
    writer.exec(GXPROXY2);
    writer.prepare('INSERT INTO gxproxy2 (key, host, port) VALUES (?, ?, ?)').run(ALICE, '127.0.0.1', 8001);
    writer.close(); // the last connection: SQLite removes -wal and -shm
    const check = () =>
      new ProxyProcess(spawn('/usr/sbin/runuser', ['-u', 'nobody', '--', process.execPath, MAIN_JS, '--check', '--check-limit', '0', '--sessions', path], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const denied = check();
    t.after(() => denied.kill());
    const refused = await run(denied);
    assert.equal(refused.code, 1, refused.out + denied.stderr);
    assert.match(refused.out, /NOT READABLE \(unreadable\).*needs .*session_map\.sqlite-shm: give the proxy write access to the map's directory/);

    const galaxy = new Database(path); // a writer connection, as Galaxy's while it writes: -shm exists
    t.after(() => galaxy.close());
    galaxy.prepare('SELECT count(*) FROM gxproxy2').get();
    const allowed = check();
    t.after(() => allowed.kill());
    const read = await run(allowed);
    assert.equal(read.code, 0, read.out + allowed.stderr);
    assert.match(read.out, /sessions {5}1 routable/);
  },
);

test('--check names a session by the tag the proxy\'s log lines carry', async (t) => {
  const path = await sqliteMap(t);
  const check = spawnProxy(['--check', '--sessions', path]);
  t.after(() => check.kill());
  const { code, out } = await run(check);
  assert.equal(code, 0);
  const proxy = await startSpawnedProxy(t, path, ['--verbose']);
  assert.equal((await request(proxy.port, { path: '/tree', headers: cookie(ALICE) })).status, 200);
  const line = await proxy.proc.logs.waitFor((l) => l.msg === 'request', 5000);
  assert.equal(line.session, sessionTag(ALICE));
  assert.match(out, new RegExp(`^ {2}${String(line.session)} +127\\.0\\.0\\.1:\\d+ +answers`, 'm'));
});
