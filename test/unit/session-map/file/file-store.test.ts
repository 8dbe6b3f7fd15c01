/**
 * The file stores: which store a path gets (SQLite header, then the name),
 * a map that changes format under the same name, and how read failures of
 * either format are classified.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { toSnapshot } from '../../../../src/admin/check.js';
import { GalaxySqliteWriter, galaxyJson, writeSqliteMapFile } from '../../../helpers/galaxy-map.js';
import { failure, openSessionMap, read, targets, temp, whole } from '../../../helpers/map-read.js';

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
  assert.equal(toSnapshot(whole(await source.read(true))).format, 'json');
  writeSqliteMapFile(join(dir, 'next'), 'gxproxy2', [['bob', '127.0.0.1', 8002]]);
  copyFileSync(join(dir, 'next'), path); // same file, new content
  assert.notEqual(await source.version(), v1);
  const s = toSnapshot(whole(await source.read(true)));
  assert.equal(s.format, 'sqlite gxproxy2');
  assert.deepEqual(targets(s), { bob: '127.0.0.1:8002' });
  const v2 = await source.version();
  writeFileSync(path, galaxyJson([['carol', '127.0.0.1', 8003]]));
  assert.notEqual(await source.version(), v2);
  assert.deepEqual(targets(toSnapshot(whole(await source.read(true)))), { carol: '127.0.0.1:8003' });
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
