import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteSessionMap, WHOLE_READ_CHUNK } from '../../../../src/session-map/file/sqlite-store.js';
import { toSnapshot } from '../../../../src/admin/check.js';
import { GalaxySqliteWriter, GXPROXY2, OlderGalaxySqliteWriter, tempDir } from '../../../helpers/galaxy-map.js';
import { openSessionMap, read, targets, temp, whole } from '../../../helpers/map-read.js';

test('SQLite map: reads gxproxy2, skips bad rows with reasons, knows when nothing changed', (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'm.sqlite');
  const writer = new GalaxySqliteWriter(path);
  writer.addSession('k1', 'localhost', 9001);
  writer.exec("INSERT INTO gxproxy2 (key, host, port) VALUES ('k2', NULL, 9002), ('k3', 'h', 'abc'), ('k4', 'h', 99999)");
  const source = new SqliteSessionMap(path);
  t.after(() => source.close());
  const version = source.version();
  const snap = toSnapshot(whole(source.read(true)));
  assert.equal(snap.format, 'sqlite gxproxy2');
  assert.deepEqual([...snap.routes], [['k1', { host: 'localhost', port: 9001 }]]);
  assert.deepEqual(Object.fromEntries(snap.skipped), { 'missing host': 1, 'non-numeric port': 1, 'port out of range': 1 });
  assert.equal(source.version(), version, 'nothing committed: same version');
  writer.addSession('k5', 'h', 1);
  const next = source.version();
  assert.notEqual(next, version);
  assert.equal(toSnapshot(whole(source.read(true))).routes.size, 2);
  assert.equal(source.version(), next);
});

test("sqlite gxproxy2, written with Galaxy's statements (add, re-add, update, remove)", async (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('alice', '127.0.0.1', 8001);
  galaxy.addSession('bob', 'docker-host.example.org', 8002);
  galaxy.addSession('carol', '10.0.0.7', 8003);
  galaxy.addSession('alice', '127.0.0.1', 8011); // DELETE + INSERT
  galaxy.updateSession('bob', '[::1]', 8012);
  galaxy.removeSession('carol');
  const s = await read(path);
  assert.equal(s.format, 'sqlite gxproxy2');
  assert.deepEqual(targets(s), { alice: '127.0.0.1:8011', bob: '[::1]:8012' });
  assert.equal(s.skipped.size, 0);
});

test('sqlite gxproxy (older Galaxy): key host:port, secret the cookie; a later row for a cookie wins', async (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  const older = new OlderGalaxySqliteWriter(path);
  older.addSession('alice', '127.0.0.1', 8001);
  older.addSession('bob', '[::1]', 8002);
  older.addSession('alice', '127.0.0.1', 8003);
  const s = await read(path);
  assert.equal(s.format, 'sqlite gxproxy');
  assert.deepEqual(targets(s), { alice: '127.0.0.1:8003', bob: '[::1]:8002' });
});

test('when both tables exist, gxproxy2 wins (even when it is empty)', async (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  new OlderGalaxySqliteWriter(path).addSession('old', '127.0.0.1', 8001);
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('new', '127.0.0.1', 8002);
  assert.deepEqual(targets(await read(path)), { new: '127.0.0.1:8002' });
  galaxy.removeSession('new');
  const s = await read(path);
  assert.equal(s.format, 'sqlite gxproxy2');
  assert.equal(s.routes.size, 0);
});

test('sqlite: invalid rows are skipped with a count per reason, including values holding tabs and newlines', async (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('good', '127.0.0.1', 8001);
  galaxy.exec(`
    INSERT INTO gxproxy2 (key, host, port) VALUES ('nohost', NULL, 8002);
    INSERT INTO gxproxy2 (key, host, port) VALUES ('textport', 'h', 'http');
    INSERT INTO gxproxy2 (key, host, port) VALUES ('noport', 'h', NULL);
    INSERT INTO gxproxy2 (key, host, port) VALUES ('bigport', 'h', 65536);
    INSERT INTO gxproxy2 (key, host, port) VALUES (NULL, 'h', 8003);
    INSERT INTO gxproxy2 (key, host, port) VALUES ('new' || char(10) || 'line', 'h', 8004);
    INSERT INTO gxproxy2 (key, host, port) VALUES ('tab' || char(9) || '127.0.0.1', 'h', 8005);
    INSERT INTO gxproxy2 (key, host, port) VALUES ('hostline', 'h' || char(10) || 'x', 8006);
  `);
  const s = await read(path);
  // Neither `line` (after the newline) nor `tab` (before the tab) may become a session.
  assert.deepEqual(targets(s), { good: '127.0.0.1:8001' });
  assert.deepEqual(Object.fromEntries(s.skipped), {
    'missing host': 1,
    'non-numeric port': 3,
    'port out of range': 1,
    'missing key': 1,
    'malformed key': 1,
    'malformed host': 1,
  });
});

test('sqlite in WAL mode: commits still in the -wal file are read and change version() (no checkpoint needed)', async (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  const writer = new Database(path);
  t.after(() => writer.close());
  writer.pragma('journal_mode = WAL');
  writer.pragma('wal_autocheckpoint = 0');
  writer.exec(GXPROXY2);
  const insert = writer.prepare('INSERT INTO gxproxy2 (key, host, port) VALUES (?, ?, ?)');
  insert.run('alice', '127.0.0.1', 8001);
  const source = openSessionMap(path);
  t.after(() => source.close());
  assert.deepEqual(targets(toSnapshot(whole(await source.read(true)))), { alice: '127.0.0.1:8001' });
  const before = await source.version();
  assert.equal(await source.version(), before, 'nothing committed: same version');
  insert.run('bob', '127.0.0.1', 8002);
  assert.notEqual(await source.version(), before, 'a commit in the WAL changes the version');
  assert.deepEqual(targets(toSnapshot(whole(await source.read(true)))), { alice: '127.0.0.1:8001', bob: '127.0.0.1:8002' });
  assert.equal(writer.pragma('journal_mode', { simple: true }), 'wal');
  assert.ok(statSync(`${path}-wal`).size > 0, 'the commits are still in the WAL file');
});

test('a whole read goes through the table in chunks, in rowid order, within one read transaction; a newline in one chunk spoils no other', (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  const n = WHOLE_READ_CHUNK * 2 + 5;
  const rows: [string, string, number][] = [];
  for (let i = 0; i < n; i++) rows.push([`k${i}`, 'localhost', 1 + (i % 60000)]);
  galaxy.addMany(rows);
  galaxy.exec(`UPDATE gxproxy2 SET host = 'two' || char(10) || 'lines' WHERE key = 'k${WHOLE_READ_CHUNK + 3}'`);
  galaxy.removeSession('k0'); // the first rowid is not 1
  const store = new SqliteSessionMap(path);
  t.after(() => store.close());
  const read = whole(store.read(true));
  const lines = read.rows.split('\n').slice(0, -1);
  assert.equal(lines.length, n - 1);
  assert.equal(lines[0], 'k1\tlocalhost\t2');
  assert.equal(lines[WHOLE_READ_CHUNK + 2], `k${WHOLE_READ_CHUNK + 3}\t\u0001\t${WHOLE_READ_CHUNK + 4}`);
  assert.equal(lines.at(-1), `k${n - 1}\tlocalhost\t${n}`);
  const snap = toSnapshot(read);
  assert.equal(snap.routes.size, n - 2);
  assert.deepEqual(Object.fromEntries(snap.skipped), { 'malformed host': 1 });
  galaxy.addSession('k5', 'localhost', 5); // the ledger of a chunked read tells what it replaced
  assert.deepEqual(store.read(false), { kind: 'changes', format: 'sqlite gxproxy2', routing: 'cookie', removed: 'k5\tlocalhost\t6\n', inserted: 'k5\tlocalhost\t5\n' });
  assert.deepEqual(store.reads, { whole: 1, changes: 1 });
});
