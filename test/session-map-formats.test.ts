/**
 * Reading each session map format from real files, as Galaxy writes them:
 * which store a path gets, what each format yields, which entries are
 * skipped and why, how failures are classified, and what the cheap change
 * check (`version()`) notices.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SessionMapError } from '../src/session-map/store.js';
import { toSnapshot } from '../src/session-map/rows.js';
import { type SessionMapSnapshot } from '../src/session-map/rows.js';
import { storeKindFor } from '../src/session-map/stores.js';

const openSessionMap = (path: string) => storeKindFor(path).open(path);
import {
  GalaxySqliteWriter,
  GXPROXY2,
  OlderGalaxySqliteWriter,
  galaxyJson,
  oldestGalaxyJson,
  tempDir,
  writeSqliteMapFile,
} from './helpers/galaxy-map.js';

function temp(t: import('node:test').TestContext): string {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  return tmp.dir;
}

async function read(path: string): Promise<SessionMapSnapshot> {
  const source = openSessionMap(path);
  try {
    return toSnapshot(await source.read());
  } finally {
    source.close();
  }
}

const targets = (s: SessionMapSnapshot): Record<string, string> =>
  Object.fromEntries([...s.routes].map(([k, { host, port }]) => [k, `${host}:${port}`]));

async function failure(path: string): Promise<SessionMapError> {
  try {
    await read(path);
  } catch (err) {
    assert.ok(err instanceof SessionMapError, String(err));
    return err;
  }
  assert.fail(`reading ${path} did not fail`);
}

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

test('a file that starts with the SQLite header is SQLite whatever its name; otherwise .sqlite is SQLite, anything else JSON', async (t) => {
  const dir = temp(t);
  for (const name of ['session_map.db', 'session_map.json', 'map']) {
    new GalaxySqliteWriter(join(dir, name)).addSession('alice', '127.0.0.1', 8001);
    assert.equal((await read(join(dir, name))).format, 'sqlite gxproxy2', name);
  }
  writeFileSync(join(dir, 'routes'), galaxyJson([['alice', '127.0.0.1', 8001]]));
  assert.equal((await read(join(dir, 'routes'))).format, 'json');
  // JSON in a file named .sqlite is not a database: the legacy rule holds.
  writeFileSync(join(dir, 'x.sqlite'), galaxyJson([['alice', '127.0.0.1', 8001]]));
  assert.equal((await failure(join(dir, 'x.sqlite'))).failure, 'corrupt');
});

test('a map whose format changes under the same name is followed (JSON replaced by SQLite and back)', async (t) => {
  const dir = temp(t);
  const path = join(dir, 'session_map.json');
  const source = openSessionMap(path);
  t.after(() => source.close());
  writeFileSync(path, galaxyJson([['alice', '127.0.0.1', 8001]]));
  const v1 = await source.version();
  assert.equal(toSnapshot(await source.read()).format, 'json');
  writeSqliteMapFile(join(dir, 'next'), 'gxproxy2', [['bob', '127.0.0.1', 8002]]);
  copyFileSync(join(dir, 'next'), path); // same file, new content
  assert.notEqual(await source.version(), v1);
  const s = toSnapshot(await source.read());
  assert.equal(s.format, 'sqlite gxproxy2');
  assert.deepEqual(targets(s), { bob: '127.0.0.1:8002' });
  const v2 = await source.version();
  writeFileSync(path, galaxyJson([['carol', '127.0.0.1', 8003]]));
  assert.notEqual(await source.version(), v2);
  assert.deepEqual(targets(toSnapshot(await source.read())), { carol: '127.0.0.1:8003' });
});

test('json: the current shape and the oldest shape, told apart by the values', async (t) => {
  const dir = temp(t);
  writeFileSync(join(dir, 'current.json'), galaxyJson([['alice', '127.0.0.1', 8001], ['bob', 'docker-host', 8002]]));
  const current = await read(join(dir, 'current.json'));
  assert.equal(current.format, 'json');
  assert.deepEqual(targets(current), { alice: '127.0.0.1:8001', bob: 'docker-host:8002' });

  writeFileSync(join(dir, 'oldest.json'), oldestGalaxyJson([['alice', '127.0.0.1', 8001], ['bob', '[::1]', 8002]]));
  const oldest = await read(join(dir, 'oldest.json'));
  assert.equal(oldest.format, 'json host:port');
  assert.deepEqual(targets(oldest), { alice: '127.0.0.1:8001', bob: '[::1]:8002' });

  // Ports written as strings are accepted, as Galaxy's older writers did.
  writeFileSync(join(dir, 'mixed.json'), JSON.stringify({ alice: { host: 'h1', port: '8001' }, '127.0.0.1:8002': 'bob' }));
  const mixed = await read(join(dir, 'mixed.json'));
  assert.equal(mixed.format, 'json mixed');
  assert.deepEqual(targets(mixed), { alice: 'h1:8001', bob: '127.0.0.1:8002' });

  writeFileSync(join(dir, 'empty.json'), '{}');
  assert.equal((await read(join(dir, 'empty.json'))).routes.size, 0);
});

test('json: invalid entries are skipped with a count per reason; the rest load', async (t) => {
  const path = join(temp(t), 'session_map.json');
  writeFileSync(
    path,
    JSON.stringify({
      good: { host: '127.0.0.1', port: 8001 },
      nohost: { port: 8002 },
      emptyhost: { host: '', port: 8003 },
      badhost: { host: 'a b', port: 8004 },
      textport: { host: 'h', port: 'http' },
      noport: { host: 'h' },
      bigport: { host: 'h', port: 70000 },
      zeroport: { host: 'h', port: 0 },
      fraction: { host: 'h', port: 80.5 },
      '': { host: 'h', port: 8005 },
      'tab\tkey': { host: 'h', port: 8006 },
      '127.0.0.1:8007': 42,
      '127.0.0.1:8008': null,
      'no-port-here': 'dave',
      'also good': { host: 'docker-1.example.org', port: '8009' },
    }),
  );
  const s = await read(path);
  assert.deepEqual(targets(s), { good: '127.0.0.1:8001', 'also good': 'docker-1.example.org:8009' });
  assert.deepEqual(Object.fromEntries(s.skipped), {
    'missing host': 2,
    'malformed host': 1,
    'non-numeric port': 3,
    'port out of range': 3,
    'missing key': 1,
    'malformed key': 1,
    'non-string key': 2,
  });
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

test('failures are classified: missing, no table yet, corrupt, empty or half-written JSON, JSON of the wrong shape', async (t) => {
  const dir = temp(t);
  assert.equal((await failure(join(dir, 'none.sqlite'))).failure, 'missing');
  assert.equal((await failure(join(dir, 'none.json'))).failure, 'missing');

  // Galaxy's start-up race: the database exists before its table does.
  new Database(join(dir, 'empty.sqlite')).close();
  const noTable = await failure(join(dir, 'empty.sqlite'));
  assert.equal(noTable.failure, 'no-table');
  assert.ok(noTable.isWaiting);

  writeFileSync(join(dir, 'garbage.sqlite'), 'not a database at all, but long enough to have a header');
  assert.equal((await failure(join(dir, 'garbage.sqlite'))).failure, 'corrupt');

  const full = galaxyJson([['alice', '127.0.0.1', 8001], ['bob', '127.0.0.1', 8002]]);
  for (const text of ['', '   \n', full.slice(0, 1), full.slice(0, full.length / 2), full.slice(0, -1)]) {
    writeFileSync(join(dir, 'partial.json'), text);
    assert.equal((await failure(join(dir, 'partial.json'))).failure, 'incomplete', JSON.stringify(text));
  }
  for (const text of ['[]', 'null', '"alice"', '42']) {
    writeFileSync(join(dir, 'shape.json'), text);
    assert.equal((await failure(join(dir, 'shape.json'))).failure, 'corrupt', text);
  }
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
  assert.deepEqual(targets(toSnapshot(await source.read())), { alice: '127.0.0.1:8001' });
  const before = await source.version();
  assert.equal(await source.version(), before, 'nothing committed: same version');
  insert.run('bob', '127.0.0.1', 8002);
  assert.notEqual(await source.version(), before, 'a commit in the WAL changes the version');
  assert.deepEqual(targets(toSnapshot(await source.read())), { alice: '127.0.0.1:8001', bob: '127.0.0.1:8002' });
  assert.equal(writer.pragma('journal_mode', { simple: true }), 'wal');
  assert.ok(statSync(`${path}-wal`).size > 0, 'the commits are still in the WAL file');
});

test('json version(): a file changed moments ago counts as changed on every check (timestamps are coarse)', async (t) => {
  const path = join(temp(t), 'session_map.json');
  writeFileSync(path, galaxyJson([['alice', '127.0.0.1', 8001]]));
  const source = openSessionMap(path);
  // Same size, same inode, likely the same timestamp: only distrust of a
  // recent change makes sure the second write is read.
  const v1 = await source.version();
  writeFileSync(path, galaxyJson([['alice', '127.0.0.1', 8002]]));
  const v2 = await source.version();
  assert.notEqual(v1, v2);
  assert.notEqual(await source.version(), v2, 'still recent: still counts as changed');
});
