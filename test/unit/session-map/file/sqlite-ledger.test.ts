/**
 * Reads of changes from an SQLite map (SqliteSessionMap.read and its ledger):
 * Galaxy's own statements are read as the rows they changed, alone, and
 * everything the cheap checks cannot account for makes the store read the
 * whole table, which it answers as the changes against its last answer.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteSessionMap } from '../../../../src/session-map/file/sqlite-store.js';
import { KEY_TYPE_MARK, rowLine } from '../../../../src/session-map/rows.js';
import { GalaxySqliteWriter, writeSqliteMapFile } from '../../../helpers/galaxy-map.js';
import { galaxyItWriter, KEY_TYPE } from '../../../helpers/galaxy-it-map.js';
import { temp, whole } from '../../../helpers/map-read.js';
import { MAX_DIFF_ENTRIES } from '../../../../src/session-map/store.js';

/** A read that is not forced, when the store read the changes alone (undefined: it read the whole table). */
function readChanges(store: SqliteSessionMap): { format: string; routing: string; removed: string; inserted: string } | undefined {
  const alone = store.reads.changes;
  const answer = store.read(false);
  if (store.reads.changes === alone) return undefined;
  if (answer.kind !== 'changes') assert.fail('a whole answer after a read of changes');
  return { format: answer.format, routing: answer.routing, removed: answer.removed, inserted: answer.inserted };
}

/** A map of `n` sessions (s0…) written with Galaxy's statements, read whole once. */
function galaxyMap(t: TestContext, n: number): { galaxy: GalaxySqliteWriter; store: SqliteSessionMap; path: string } {
  const path = join(temp(t), 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  for (let i = 0; i < n; i++) galaxy.addSession(`s${i}`, 'localhost', 9000 + i);
  const store = new SqliteSessionMap(path);
  t.after(() => store.close());
  whole(store.read(true));
  return { galaxy, store, path };
}

const row = (key: string, port: number, host = 'localhost'): string => rowLine(key, host, port);

/** A whole read answered as the changes since the last answer (its rows compared with that answer's). */
const compared = (format: string, removed: string, inserted: string): object => ({ kind: 'changes', format, routing: 'cookie', removed, inserted, skipped: new Map() });

test("Galaxy's add, re-add and removal of sessions below the top row are read as the rows they changed", (t) => {
  const { galaxy, store } = galaxyMap(t, 5);
  galaxy.addSession('new', '10.0.0.1', 8000);
  assert.deepEqual(readChanges(store), { format: 'sqlite gxproxy2', routing: 'cookie', removed: '', inserted: row('new', 8000, '10.0.0.1') });
  galaxy.addSession('s1', 'localhost', 7001); // DELETE + INSERT: the new row comes last
  assert.deepEqual(readChanges(store), { format: 'sqlite gxproxy2', routing: 'cookie', removed: row('s1', 9001), inserted: row('s1', 7001) });
  galaxy.addSession('later', 'localhost', 7100);
  assert.equal(readChanges(store)?.inserted, row('later', 7100));
  galaxy.addSession('s1', 'localhost', 7002); // again: now the earlier row is one read as a change
  assert.deepEqual(readChanges(store), { format: 'sqlite gxproxy2', routing: 'cookie', removed: row('s1', 7001), inserted: row('s1', 7002) });
  galaxy.removeSession('s2'); // found by the rowids that are gone
  assert.deepEqual(readChanges(store), { format: 'sqlite gxproxy2', routing: 'cookie', removed: row('s2', 9002), inserted: '' });
  galaxy.removeSession('s0');
  galaxy.addSession('s3', 'localhost', 7003);
  galaxy.addSession('another', 'localhost', 7004);
  assert.deepEqual(readChanges(store), {
    format: 'sqlite gxproxy2',
    routing: 'cookie',
    removed: row('s0', 9000) + row('s3', 9003),
    inserted: row('s3', 7003) + row('another', 7004),
  });
  assert.deepEqual(readChanges(store), { format: 'sqlite gxproxy2', routing: 'cookie', removed: '', inserted: '' }, 'nothing committed since: no change');
  whole(store.read(true));
  galaxy.addMany([['m1', 'localhost', 1], ['m2', 'localhost', 2], ['s4', 'localhost', 3]]); // one commit, three rows
  assert.deepEqual(readChanges(store), {
    format: 'sqlite gxproxy2',
    routing: 'cookie',
    removed: row('s4', 9004),
    inserted: row('m1', 1) + row('m2', 2) + row('s4', 3),
  });
});

test('what the checks cannot account for is a whole read: UPDATE in place, the top row deleted or rewritten, rowids below the top, VACUUM, another file', async (t) => {
  await t.test('an UPDATE in place (Galaxy update_requests) shows nothing to the checks', (t) => {
    const { galaxy, store } = galaxyMap(t, 3);
    galaxy.updateSession('s1', 'otherhost', 9999);
    assert.equal(readChanges(store), undefined);
  });
  await t.test("Galaxy's update_requests and add_requests in one interval: more commits than rows shown", (t) => {
    const { galaxy, store } = galaxyMap(t, 3);
    galaxy.updateSession('s1', 'otherhost', 9999);
    galaxy.addSession('new', 'localhost', 1);
    assert.equal(readChanges(store), undefined);
  });
  await t.test('WAL mode: SQLite keeps no commit counter, so every change is a whole read', (t) => {
    const { galaxy, store } = galaxyMap(t, 3);
    galaxy.exec('PRAGMA journal_mode = WAL');
    whole(store.read(true));
    galaxy.addSession('new', 'localhost', 1);
    galaxy.updateSession('s0', 'moved', 2);
    const alone = store.reads.changes;
    // The whole read is answered as what changed since the last answer, its rows compared with that answer's.
    assert.deepEqual(store.read(false), compared('sqlite gxproxy2', row('s0', 9000), row('s0', 2, 'moved') + row('new', 1)));
    assert.equal(store.reads.changes, alone, 'read whole, not alone');
    assert.equal(store.read(true).kind, 'whole', 'a forced read is answered whole');
  });
  await t.test('the top row deleted: the highest rowid went down', (t) => {
    const { galaxy, store } = galaxyMap(t, 3);
    galaxy.removeSession('s2');
    assert.equal(readChanges(store), undefined);
  });
  await t.test('the top session re-added: its rowid is used again for another row', (t) => {
    const { galaxy, store } = galaxyMap(t, 3);
    galaxy.addSession('s2', 'localhost', 7777);
    assert.equal(readChanges(store), undefined);
  });
  await t.test('the top row deleted and another session added: same rowid, another row', (t) => {
    const { galaxy, store } = galaxyMap(t, 3);
    galaxy.removeSession('s2');
    galaxy.addSession('x', 'localhost', 7777);
    assert.equal(readChanges(store), undefined);
  });
  await t.test('a row written below the top rowid by an admin (an explicit rowid): more rows than accounted for', (t) => {
    const { galaxy, store } = galaxyMap(t, 4);
    galaxy.removeSession('s1');
    assert.notEqual(readChanges(store), undefined);
    galaxy.exec("INSERT INTO gxproxy2 (rowid, key, host, port) VALUES (2, 'sneaky', 'localhost', 1234)");
    galaxy.addSession('new', 'localhost', 8000);
    assert.equal(readChanges(store), undefined);
  });
  await t.test('VACUUM after deletions renumbers the rowids: a whole read', (t) => {
    const { galaxy, store } = galaxyMap(t, 6);
    galaxy.removeSession('s1');
    galaxy.removeSession('s3');
    assert.notEqual(readChanges(store), undefined);
    galaxy.exec('VACUUM');
    assert.equal(readChanges(store), undefined);
  });
  await t.test('the file replaced by another one (renamed into place)', (t) => {
    const { path, store } = galaxyMap(t, 3);
    const other = `${path}.new`;
    writeSqliteMapFile(other, 'gxproxy2', [['s0', 'localhost', 9000], ['s1', 'localhost', 9001], ['s2', 'localhost', 9002], ['s3', 'localhost', 1]]);
    renameSync(other, path);
    assert.equal(readChanges(store), undefined);
  });
  await t.test('before any whole read, and after a failed one', (t) => {
    const path = join(temp(t), 'session_map.sqlite');
    const store = new SqliteSessionMap(path);
    t.after(() => store.close());
    assert.throws(() => store.read(false), { failure: 'missing' });
    new GalaxySqliteWriter(path).addSession('s0', 'localhost', 1);
    assert.equal(readChanges(store), undefined);
    assert.equal(store.reads.whole, 1);
  });
  await t.test('older Galaxy (gxproxy: cookies may repeat) is always read whole', (t) => {
    const path = join(temp(t), 'session_map.sqlite');
    writeSqliteMapFile(path, 'gxproxy', [['a', 'localhost', 1]]);
    const store = new SqliteSessionMap(path);
    t.after(() => store.close());
    whole(store.read(true));
    assert.equal(readChanges(store), undefined);
  });
});

test("older Galaxy's gxproxy table (no ledger) is answered as the rows that changed since the last answer, and whole when asked", (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  writeSqliteMapFile(path, 'gxproxy', [['a', 'localhost', 1], ['b', 'localhost', 2]]);
  const store = new SqliteSessionMap(path);
  t.after(() => store.close());
  whole(store.read(true));
  const other = `${path}.new`;
  writeSqliteMapFile(other, 'gxproxy', [['a', 'localhost', 1], ['b', 'elsewhere', 2], ['c', 'localhost', 3]]);
  renameSync(other, path);
  assert.deepEqual(store.read(false), compared('sqlite gxproxy', row('b', 2), row('b', 2, 'elsewhere') + row('c', 3)));
  assert.equal(store.read(true).kind, 'whole', 'a forced read is answered whole');
});

test('a commit the checks cannot account for (an UPDATE in place) is read whole, and answered as what changed since the last answer', (t) => {
  const { galaxy, store } = galaxyMap(t, 3);
  galaxy.updateSession('s0', 'elsewhere', 1);
  assert.deepEqual(store.read(false), { kind: 'changes', format: 'sqlite gxproxy2', routing: 'cookie', removed: row('s0', 9000), inserted: row('s0', 1, 'elsewhere') });
  assert.deepEqual(store.reads, { whole: 2, changes: 0 });
  galaxy.addSession('after', 'localhost', 3);
  assert.deepEqual(readChanges(store)?.inserted, row('after', 3), 'the whole read left a ledger: the next commit is read alone');
  assert.deepEqual(store.read(false), { kind: 'changes', format: 'sqlite gxproxy2', routing: 'cookie', removed: '', inserted: '' }, 'nothing committed since: no change');
  assert.equal(store.read(true).kind, 'whole', 'a forced read is answered whole');
});

test(`more than ${MAX_DIFF_ENTRIES} changed rows are answered whole`, (t) => {
  const { galaxy, store } = galaxyMap(t, 3);
  galaxy.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${MAX_DIFF_ENTRIES + 1}) INSERT INTO gxproxy2 (key, host, port) SELECT 'bulk' || i, 'localhost', 1 FROM n`);
  assert.equal(store.read(false).kind, 'whole');
  assert.deepEqual(store.reads, { whole: 2, changes: 0 });
  galaxy.updateSession('s2', 'moved', 3);
  assert.equal(store.read(false).kind, 'changes', 'and the next change is told against that answer');
});

test('rows with a newline in a value, or without a usable key, are never told as changes', (t) => {
  const { galaxy, store } = galaxyMap(t, 2);
  galaxy.exec("INSERT INTO gxproxy2 (key, host, port) VALUES ('bad' || char(10) || 'key', 'localhost', 1)");
  assert.equal(readChanges(store), undefined, 'the identity is unusable: a whole read counts it as skipped');
  whole(store.read(true));
  galaxy.exec("INSERT INTO gxproxy2 (key, host, port) VALUES ('fine', 'two' || char(10) || 'lines', 1)");
  assert.deepEqual(readChanges(store)?.inserted, 'fine\t\u0001\t1\n', 'a value with a newline becomes the unusable mark, as in a whole read');
});

test("Interactive Tools (gxitproxy), both of Galaxy's writers: save, save again and remove are read as changes of (key, key_type)", async (t) => {
  for (const kind of ['sqlalchemy', 'legacy'] as const) {
    await t.test(kind, (t) => {
      const path = join(temp(t), 'interactivetools_map.sqlite');
      const galaxy = galaxyItWriter(kind, path);
      t.after(() => galaxy.close());
      for (const key of ['a', 'b', 'c']) galaxy.save({ key, token: `${key}-token`, host: 'localhost', port: 1 });
      galaxy.save({ key: 'a', keyType: 'other', token: 'a-other', host: 'localhost', port: 2 });
      const store = new SqliteSessionMap(path);
      t.after(() => store.close());
      whole(store.read(true));
      galaxy.save({ key: 'a', token: 'a-token-2', host: 'localhost', port: 3 });
      const saved = readChanges(store);
      assert.equal(saved?.format, 'sqlite gxitproxy');
      assert.equal(saved?.routing, 'entry-point');
      const mark = KEY_TYPE_MARK;
      assert.equal(saved?.removed, `a\t${mark}\ta-token\tlocalhost\t1\t\n`, 'the row of (a, default type), not of (a, other)');
      assert.equal(saved?.inserted, `a\t${mark}\ta-token-2\tlocalhost\t3\t\n`);
      galaxy.remove('b', KEY_TYPE);
      assert.equal(readChanges(store)?.removed, `b\t${mark}\tb-token\tlocalhost\t1\t\n`);
      galaxy.remove('a', 'other');
      assert.equal(readChanges(store)?.removed, 'a\tother\ta-other\tlocalhost\t2\t\n');
      galaxy.remove('a', KEY_TYPE);
      assert.equal(readChanges(store), undefined, 'that was the top row');
    });
  }
});

test('rowids an admin wrote by hand: negative ones are read (whole and as changes), ones past 2^53 mean whole reads', (t) => {
  const galaxy = new GalaxySqliteWriter(join(temp(t), 'session_map.sqlite'));
  galaxy.exec("INSERT INTO gxproxy2 (rowid, key, host, port) VALUES (-7, 'neg', 'localhost', 1), (-3, 'neg2', 'localhost', 2)");
  const store = new SqliteSessionMap(galaxy.path);
  t.after(() => store.close());
  assert.equal(whole(store.read(true)).rows, row('neg', 1) + row('neg2', 2));
  galaxy.addSession('new', 'localhost', 3); // rowid -2
  assert.deepEqual(readChanges(store)?.inserted, row('new', 3));
  galaxy.removeSession('neg');
  assert.deepEqual(readChanges(store)?.removed, row('neg', 1));
  galaxy.exec("INSERT INTO gxproxy2 (rowid, key, host, port) VALUES (9007199254740993, 'huge', 'localhost', 4)");
  assert.equal(readChanges(store), undefined, 'the new top rowid is past 2^53');
  assert.equal(whole(store.read(true)).rows, row('neg2', 2) + row('new', 3) + row('huge', 4));
  galaxy.addSession('after', 'localhost', 5);
  assert.equal(readChanges(store), undefined, 'no ledger for rowids that large');
});
