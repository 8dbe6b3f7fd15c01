import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { galaxyJson, oldestGalaxyJson } from '../../../helpers/galaxy-map.js';
import { openSessionMap, read, targets, temp } from '../../../helpers/map-read.js';
import { JsonSessionMap } from '../../../../src/session-map/file/json-store.js';
import { rowLine } from '../../../../src/session-map/rows.js';
import { MAX_DIFF_ENTRIES } from '../../../../src/session-map/store.js';

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

test('json: a read after the first is answered as the rows that changed since the last answer; a forced read, a format change or a large change is whole', (t) => {
  const path = join(temp(t), 'session_map.json');
  const store = new JsonSessionMap(path);
  t.after(() => store.close());
  const sessions = Array.from({ length: 50 }, (_, i): [string, string, number] => [`s${i}`, '127.0.0.1', 9000 + i]);
  writeFileSync(path, galaxyJson(sessions));
  assert.equal(store.read(false).kind, 'whole', 'the first answer');
  writeFileSync(path, galaxyJson([...sessions.slice(0, 10), ['s10', 'moved', 1], ...sessions.slice(11), ['new', '127.0.0.1', 2]]));
  assert.deepEqual(store.read(false), {
    kind: 'changes',
    format: 'json',
    routing: 'cookie',
    removed: rowLine('s10', '127.0.0.1', 9010),
    inserted: rowLine('s10', 'moved', 1) + rowLine('new', '127.0.0.1', 2),
    skipped: new Map(),
  });
  const same = store.read(false);
  assert.ok(same.kind === 'changes' && same.removed === '' && same.inserted === '', 'the same bytes: no change');
  assert.equal(store.read(true).kind, 'whole');
  writeFileSync(path, oldestGalaxyJson(sessions));
  assert.equal(store.read(false).kind, 'whole', 'another shape (format) is answered whole');
  writeFileSync(path, galaxyJson(Array.from({ length: MAX_DIFF_ENTRIES + 1 }, (_, i): [string, string, number] => [`n${i}`, 'h', 1])));
  store.read(false);
  writeFileSync(path, galaxyJson(Array.from({ length: MAX_DIFF_ENTRIES + 1 }, (_, i): [string, string, number] => [`n${i}`, 'h', 2])));
  assert.equal(store.read(false).kind, 'whole', `more than ${MAX_DIFF_ENTRIES} rows changed`);
});
