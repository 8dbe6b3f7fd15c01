/**
 * The update producer on a real SQLite map written with Galaxy's statements:
 * the store reads changes on their own where it can tell them, whole reads
 * (answered as the changes against its last answer) cover the rest, and the
 * updates always add up to exactly the map a fresh whole read gives,
 * including after a change in the store's blind spot once the store's
 * periodic whole read has run.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { MapUpdate } from '../../../src/session-map/producer.js';
import { SqliteSessionMap } from '../../../src/session-map/file/sqlite-store.js';
import { forEachRow, linesOf, rowLine } from '../../../src/session-map/rows.js';
import { toSnapshot } from '../../../src/admin/check.js';
import { fileStores } from '../../../src/session-map/file/file-store.js';
import type { MapStore } from '../../../src/session-map/store.js';
import { UpdateProducer } from '../../../src/session-map/producer.js';
import { GalaxySqliteWriter } from '../../helpers/galaxy-map.js';
import { read, temp, whole } from '../../helpers/map-read.js';
import { Random } from '../../helpers/random.js';

/** An SQLite map as a MapStore, whose reads (whole table, changes alone) the test can count. */
function sqliteStore(path: string, verifyAfterMs: number): { store: MapStore; counts: { whole: number; changes: number } } {
  const map = new SqliteSessionMap(path, verifyAfterMs);
  const store: MapStore = { label: path, version: () => Promise.resolve(map.version()), read: (w) => Promise.resolve().then(() => map.read(w)), close: () => map.close() };
  return { store, counts: map.reads };
}

/** Applies an update the way the reloader does, to a plain map key → `host:port`. */
function apply(map: Map<string, string>, update: MapUpdate | undefined): Map<string, string> {
  if (update === undefined || update.kind === 'same') return map;
  const next = update.kind === 'full' ? new Map<string, string>() : map;
  if (update.kind === 'diff') for (const key of linesOf(update.removals)) next.delete(key);
  forEachRow(update.kind === 'full' ? update.rows : update.upserts, 0, Infinity, (k, h, p) => next.set(k, `${h}:${p}`));
  return next;
}

async function truth(path: string): Promise<Map<string, string>> {
  return new Map([...(await read(path)).routes].map(([k, { host, port }]) => [k, `${host}:${port}`]));
}

function setup(t: TestContext, verifyAfterMs: number) {
  const path = join(temp(t), 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  const { store, counts } = sqliteStore(path, verifyAfterMs);
  const producer = new UpdateProducer(store);
  t.after(() => producer.close());
  return { path, galaxy, counts, producer };
}

test("random runs of Galaxy's statements (add, re-add, remove, update in place, VACUUM, bad rows): the updates always give the map a whole read gives", async (t) => {
  for (const seed of [1, 2, 3]) {
    const { path, galaxy, counts, producer } = setup(t, Infinity);
    const random = new Random(seed);
    const rnd = (): number => random.next();
    const keys: string[] = [];
    for (let i = 0; i < 40; i++) {
      keys.push(`k${i}`);
      galaxy.addSession(`k${i}`, 'localhost', 9000 + i);
    }
    let map = apply(new Map(), await producer.produce(false));
    let fresh = 40;
    for (let step = 0; step < 120; step++) {
      const r = rnd();
      const key = keys[Math.floor(rnd() * keys.length)];
      if (r < 0.35) {
        const k = `n${fresh++}`;
        keys.push(k);
        galaxy.addSession(k, 'localhost', 1000 + step);
      } else if (r < 0.65) galaxy.addSession(key, '10.0.0.1', 2000 + step);
      else if (r < 0.8) galaxy.removeSession(key);
      else if (r < 0.9) galaxy.updateSession(key, '10.0.0.2', 3000 + step);
      else if (r < 0.95) galaxy.exec(`INSERT OR REPLACE INTO gxproxy2 (key, host, port) VALUES ('${key}', NULL, 1)`);
      else galaxy.exec('VACUUM');
      // Sometimes two commits between reads (Galaxy writes faster than the debounce).
      if (rnd() < 0.25) continue;
      map = apply(map, await producer.produce(false));
      assert.deepEqual(map, await truth(path), `seed ${seed}, step ${step}`);
    }
    map = apply(map, await producer.produce(false));
    assert.deepEqual(map, await truth(path), `seed ${seed}, the end`);
    assert.ok(counts.changes > 20, `most commits were read as changes (seed ${seed}: ${counts.changes} of them, ${counts.whole} whole reads)`);
  }
});

test('one transaction that both updates a row in place and adds one is the blind spot: the periodic whole read routes it, as a diff', async (t) => {
  const { path, galaxy, counts, producer } = setup(t, 0);
  for (let i = 0; i < 5; i++) galaxy.addSession(`s${i}`, 'localhost', 9000 + i);
  let map = apply(new Map(), await producer.produce(false));
  // Not a statement Galaxy writes: an admin's script.
  galaxy.exec("BEGIN; UPDATE gxproxy2 SET host = 'moved', port = 7001 WHERE key = 's1'; INSERT INTO gxproxy2 (key, host, port) VALUES ('new', 'localhost', 8000); COMMIT");
  const update = await producer.produce(false);
  assert.equal(update?.kind, 'diff');
  assert.equal(counts.changes, 1);
  map = apply(map, update);
  assert.equal(map.get('new'), 'localhost:8000');
  assert.equal(map.get('s1'), 'localhost:9001', 'the UPDATE is not seen by the read of changes');
  // Nothing committed since; the whole read is due (verifyAfterMs 0) and finds it.
  const verify = await producer.produce(false);
  assert.equal(verify?.kind, 'diff');
  assert.equal(counts.whole, 2);
  map = apply(map, verify);
  assert.deepEqual(map, await truth(path));
  const after = await producer.produce(false);
  assert.ok(after === undefined || after.kind === 'same', 'verified: nothing more to route');
  assert.equal(await producer.produce(false), undefined, 'nothing more to read until the next commit');
});

test("Galaxy's update_requests is never in the blind spot, even in one interval with another commit", async (t) => {
  const { path, galaxy, counts, producer } = setup(t, Infinity);
  for (let i = 0; i < 5; i++) galaxy.addSession(`s${i}`, 'localhost', 9000 + i);
  let map = apply(new Map(), await producer.produce(false));
  galaxy.updateSession('s2', 'moved', 7002);
  galaxy.addSession('newer', 'localhost', 8001);
  const seen = await producer.produce(false);
  assert.equal(seen?.kind, 'diff', 'a whole read, whose diff from the last read is sent');
  assert.deepEqual(counts, { whole: 2, changes: 0 });
  map = apply(map, seen);
  assert.deepEqual(map, await truth(path));
  assert.equal(map.get('s2'), 'moved:7002');
});

test('a whole read after changes read on their own finds the map as they left it: it is answered as only the rows changed since', (t) => {
  const path = join(temp(t), 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  for (let i = 0; i < 6; i++) galaxy.addSession(`s${i}`, 'localhost', 9000 + i);
  const store = new SqliteSessionMap(path, Infinity);
  t.after(() => store.close());
  assert.equal(store.read(false).kind, 'whole');
  const edits: (() => void)[] = [
    () => galaxy.addSession('a', 'localhost', 1),
    () => galaxy.addSession('s1', 'localhost', 2),
    () => galaxy.removeSession('s3'),
    () => galaxy.addSession('b', 'localhost', 3),
    () => galaxy.addSession('s1', 'localhost', 4), // the row read as a change is replaced again
    () => galaxy.removeSession('a'),
    () => galaxy.addSession('c', 'localhost', 5),
  ];
  for (const edit of edits) {
    edit();
    assert.equal(store.read(false).kind, 'changes');
  }
  assert.deepEqual(store.reads, { whole: 1, changes: edits.length });
  galaxy.updateSession('s0', 'moved', 1); // an UPDATE in place: the store reads the whole table
  assert.deepEqual(store.read(false), { kind: 'changes', format: 'sqlite gxproxy2', routing: 'cookie', removed: rowLine('s0', 'localhost', 9000), inserted: rowLine('s0', 'moved', 1) });
  assert.deepEqual(store.reads, { whole: 2, changes: edits.length });
});

test('a forced read (SIGHUP) is whole and a rebuild, even when changes could be read on their own', async (t) => {
  const { galaxy, counts, producer } = setup(t, Infinity);
  galaxy.addSession('s0', 'localhost', 1);
  await producer.produce(false);
  galaxy.addSession('s1', 'localhost', 2);
  assert.equal((await producer.produce(true))?.kind, 'full');
  assert.deepEqual(counts, { whole: 2, changes: 0 });
  const snapshot = toSnapshot(whole(await fileStores.open(galaxy.path).read(true)));
  assert.equal(snapshot.routes.size, 2);
});

test('the file touched without a commit (its times move, so the version does): a read of changes finds nothing, no whole read', async (t) => {
  const { path, galaxy, counts, producer } = setup(t, Infinity);
  for (let i = 0; i < 3; i++) galaxy.addSession(`s${i}`, 'localhost', 9000 + i);
  await producer.produce(false);
  galaxy.addSession('a', 'localhost', 1);
  assert.equal((await producer.produce(false))?.kind, 'diff');
  chmodSync(path, 0o640); // the change time moves
  chmodSync(path, 0o644);
  assert.equal((await producer.produce(false))?.kind, 'same');
  assert.deepEqual(counts, { whole: 1, changes: 2 });
});

test('changes the route table cannot take as a diff (a repeated identity) make the producer ask the store for the whole map', async () => {
  const asked: boolean[] = [];
  const rows = rowLine('a', 'h', 1) + rowLine('b', 'h', 2);
  let version = 0;
  const store: MapStore = {
    label: 'a store of the seam',
    version: () => Promise.resolve(String(++version)),
    read: (whole) => {
      asked.push(whole);
      if (whole || asked.length === 1) return Promise.resolve({ kind: 'whole', format: 'f', routing: 'cookie', rows, uniqueKeys: true, skipped: new Map() });
      return Promise.resolve({ kind: 'changes', format: 'f', routing: 'cookie', removed: '', inserted: rowLine('c', 'h', 3) + rowLine('c', 'h', 4) });
    },
    close: () => {},
  };
  const producer = new UpdateProducer(store);
  assert.equal((await producer.produce(false))?.kind, 'full');
  const update = await producer.produce(false);
  assert.equal(update?.kind, 'full');
  assert.equal(update?.sessions, 2);
  assert.deepEqual(asked, [false, false, true]);
});
