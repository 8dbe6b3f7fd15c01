/**
 * The producer's conversion of a store's answers (whole, or the changes
 * since its last answer) into updates for the route table, keeping only
 * counts. Whatever the edits, applying its updates must give exactly the map
 * a whole read gives, with the same session and skip counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UpdateMaker, type MapUpdate } from '../../../src/session-map/producer.js';
import { align, forEachRow, rowLine } from '../../../src/session-map/rows.js';
import { toSnapshot } from '../../../src/admin/check.js';
import { MAX_DIFF_ENTRIES, type MapChanges, type MapRead } from '../../../src/session-map/store.js';

type Row = [string, string, string];
const read = (rows: Row[], uniqueKeys = true): MapRead => ({
  kind: 'whole',
  format: 'sqlite gxproxy2',
  routing: 'cookie',
  rows: rows.map(([k, h, p]) => rowLine(k, h, p)).join(''),
  uniqueKeys,
  skipped: new Map(),
});

/** Applies an update the way the reloader does, to a plain map key → `host:port`. */
function apply(map: Map<string, string>, update: MapUpdate): Map<string, string> {
  if (update.kind === 'same') return map;
  const next = update.kind === 'full' ? new Map<string, string>() : map;
  if (update.kind === 'diff') for (const key of update.removals.split('\n').filter(Boolean)) next.delete(key);
  forEachRow(update.kind === 'full' ? update.rows : update.upserts, 0, Infinity, (k, h, p) => next.set(k, `${h}:${p}`));
  return next;
}

/** What a store that keeps its last answer's rows answers (json-store.ts): the rows lined up with the last answer's. */
function changes(before: MapRead, after: MapRead): MapChanges {
  return { kind: 'changes', format: after.format, routing: after.routing, ...align(before.rows, after.rows) };
}

/** The update for `answer`, or for the whole map when the producer cannot take the changes (as UpdateProducer asks for it). */
function updateFor(maker: UpdateMaker, answer: MapChanges, now: MapRead): MapUpdate {
  return maker.next(answer) ?? maker.next(now)!;
}

const truth = (r: MapRead): Map<string, string> =>
  new Map([...toSnapshot(r).routes].map(([k, { host, port }]) => [k, `${host}:${port}`]));

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test("random edits of Galaxy's kinds (add, re-add, update, delete, bad rows, bulk): the updates rebuild exactly the map", () => {
  const next = random(20240611);
  const pick = <T>(list: T[]): T => list[Math.floor(next() * list.length)];
  let rows: Row[] = Array.from({ length: MAX_DIFF_ENTRIES + 100 }, (_, i) => [`k${i}`, '127.0.0.1', String(8000 + i)]);
  const maker = new UpdateMaker();
  let last = read(rows);
  let map = apply(new Map(), maker.next(last)!);
  const kinds = new Set<string>();
  for (let round = 0; round < 300; round++) {
    const edits = next() < 0.1 ? 1 + Math.floor(next() * 30) : 1;
    for (let e = 0; e < edits; e++) {
      const i = Math.floor(next() * rows.length);
      const op = pick(['append', 'readd', 'update', 'delete', 'bad']);
      if (op === 'append') rows.push([`n${round}-${e}`, '127.0.0.1', String(9000 + e)]);
      else if (op === 'readd' && rows.length > 0) rows.push(...rows.splice(i, 1).map((r): Row => [r[0], r[1], String(Number(r[2]) + 1)]));
      else if (op === 'update' && rows.length > 0) rows[i] = [rows[i][0], pick(['10.0.0.1', 'docker-host']), rows[i][2]];
      else if (op === 'delete' && rows.length > 0) rows.splice(i, 1);
      else if (op === 'bad' && rows.length > 0) rows[i] = [rows[i][0], '', 'x'];
    }
    if (next() < 0.02) rows = rows.map((r): Row => [r[0], r[1], String(Number(r[2]) % 60000 + 1)]); // bulk: every row
    const r = read(rows);
    const update = updateFor(maker, changes(last, r), r);
    last = r;
    kinds.add(update.kind);
    map = apply(map, update);
    assert.deepEqual(map, truth(r), `round ${round}`);
    assert.equal(update.sessions, map.size);
    const skipped = Object.fromEntries(update.skipped);
    assert.deepEqual(skipped, Object.fromEntries(toSnapshot(r).skipped), `skip counts, round ${round}`);
  }
  assert.deepEqual(kinds, new Set(['diff', 'full', 'same']), 'every kind of update was exercised');
});

test(`a change of more than ${MAX_DIFF_ENTRIES} sessions, or a repeated identity, cannot be a diff: the whole map is asked for; keys that may repeat are always a rebuild`, () => {
  const rows: Row[] = Array.from({ length: MAX_DIFF_ENTRIES + 10 }, (_, i) => [`k${i}`, 'h', '8000']);
  const maker = new UpdateMaker();
  const first = read(rows);
  maker.next(first);
  const moved = read(rows.map((r): Row => [r[0], r[1], '8001']));
  assert.equal(maker.next(changes(first, moved)), undefined);
  assert.equal(maker.next(moved)?.kind, 'full');
  const more = read([...rows, ['x', 'h', '1']].map((r): Row => [r[0], r[1], '8001']));
  assert.equal(maker.next(changes(moved, more))?.kind, 'diff');
  const twice: MapChanges = { kind: 'changes', format: 'sqlite gxproxy2', routing: 'cookie', removed: '', inserted: rowLine('y', 'h', 1) + rowLine('y', 'h', 2) };
  assert.equal(maker.next(twice), undefined);

  const legacy = new UpdateMaker();
  const update = legacy.next(read([['a', 'h', '1'], ['a', 'h', '2'], ['a', 'h', '3']], false));
  assert.equal(update?.kind, 'full');
  assert.equal(update?.sessions, 1);
  assert.equal(new UpdateMaker().next(twice), undefined, 'changes before any whole answer');
});

test('a full rebuild of a map with unique keys passes the valid rows through: none dropped, every invalid one counted, the read itself when all are valid', () => {
  const good: Row[] = [['a', 'h', '1'], ['b', 'h', '2'], ['c', 'h', '3']];
  const clean = read(good);
  const all = new UpdateMaker().next(clean)!;
  assert.ok(all.kind === 'full');
  assert.equal(all.rows, clean.rows, 'no copy when every row is valid');
  assert.equal(all.sessions, 3);
  assert.deepEqual(all.skipped, []);

  const mixed = read([['', 'h', '1'], ['a', 'h', '1'], ['b', '', '2'], ['c', 'h', 'x'], ['d', 'h', '4'], ['e', 'h', '70000']]);
  const update = new UpdateMaker().next(mixed)!;
  assert.ok(update.kind === 'full');
  assert.equal(update.rows, [['a', 'h', '1'], ['d', 'h', '4']].map(([k, h, p]) => rowLine(k, h, p)).join(''));
  assert.equal(update.sessions, 2);
  assert.deepEqual(new Map(update.skipped), new Map([['missing key', 1], ['missing host', 1], ['non-numeric port', 1], ['port out of range', 1]]));
  assert.deepEqual(apply(new Map(), update), truth(mixed));

  // A last row without its newline (a store that trims) still ends with one.
  const trimmed: MapRead = { ...clean, rows: clean.rows.slice(0, -1) };
  const fromTrimmed = new UpdateMaker().next(trimmed)!;
  assert.ok(fromTrimmed.kind === 'full');
  assert.equal(fromTrimmed.rows, clean.rows);
});
