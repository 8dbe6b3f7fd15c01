/**
 * The gxitproxy map through the whole reload path (store → differ → reloader
 * → entry-point table → router), in-process, with Galaxy's writers: what the
 * GIE maps get, Interactive Tools get too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../../helpers/client.js';
import { startInProcessProxy } from '../../helpers/in-process-proxy.js';
import { entryPointKey, LegacyItWriter, SqlAlchemyItWriter } from '../../helpers/galaxy-it-map.js';
import { GalaxyItWriterProcess } from '../../helpers/galaxy-it-writer-process.js';
import { tempDir } from '../../helpers/galaxy-map.js';
import { startUpstream, type Seen } from '../../helpers/upstream.js';
import { DAEMON_LOG } from '../../../src/daemon.js';
import { MAP_LOG } from '../../../src/session-map/reload-report.js';

const PREFIX = '/interactivetool/ep';

async function fixture(t: import('node:test').TestContext) {
  const tmp = tempDir();
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  t.after(async () => {
    await a.close();
    await b.close();
    tmp.remove();
  });
  return { dir: tmp.dir, a, b };
}

test('unusable rows are skipped with one warning counting each reason; the rest route', async (t) => {
  const { dir, a } = await fixture(t);
  const writer = new SqlAlchemyItWriter(join(dir, 'interactivetools_map.sqlite'));
  t.after(() => writer.close());
  writer.save({ key: 'good', token: 'tg', host: '127.0.0.1', port: a.port });
  writer.save({ key: 'badjson', token: 't', host: '127.0.0.1', port: a.port, info: '{"requires_path_in_url": tru' });
  writer.save({ key: 'badjson2', token: 't', host: '127.0.0.1', port: a.port, info: 'nope' });
  writer.save({ key: 'badvalue', token: 't', host: '127.0.0.1', port: a.port, info: '{"requires_path_in_url": "yes"}' });
  writer.save({ key: 'nohost', token: 't', host: null, port: a.port });
  writer.save({ key: 'noport', token: 't', host: '127.0.0.1', port: null });
  writer.save({ key: 'k8s', token: 't', host: 'manual', port: 0 });
  const proxy = await startInProcessProxy(t, { sessionsPath: writer.path, pathPrefix: PREFIX });
  const warnings = proxy.logs.withMsg(MAP_LOG.skipped);
  assert.equal(warnings.length, 1);
  assert.deepEqual(warnings[0]?.skipped, {
    'info is not valid JSON': 2,
    'info has unusable values': 1,
    'missing host': 1,
    'non-numeric port': 1,
    'port out of range': 1,
  });
  assert.equal(warnings[0]?.count, 6);
  assert.equal((await request(proxy.port, { path: `${PREFIX}/good/tg/` })).status, 200);
  assert.equal((await request(proxy.port, { path: `${PREFIX}/badjson/t/` })).status, 404);
});

test('lib/main.js without Interactive Tools flags follows the map: cookie routing until Galaxy writes gxitproxy, then entry points by Host', async (t) => {
  const { dir, a } = await fixture(t);
  const writer = new LegacyItWriter(join(dir, 'interactivetools_map.sqlite'));
  const proxy = await startInProcessProxy(t, { sessionsPath: writer.path });
  assert.equal(proxy.logs.withMsg(DAEMON_LOG.listening)[0]?.routing, 'session cookie galaxysession');
  const reloaded = proxy.logs.next(MAP_LOG.reloaded, 5000);
  writer.save({ key: 'k1', token: 't1', host: '127.0.0.1', port: a.port });
  assert.equal((await reloaded).format, 'sqlite gxitproxy');
  assert.equal((await request(proxy.port, { path: '/x', headers: { host: 'k1-t1.ep.interactivetool.example.org' } })).status, 200);
  assert.equal((await request(proxy.port, { path: '/x', headers: { host: 'k1-t2.ep.interactivetool.example.org' } })).status, 404);
});

test("the proxy never changes the journal mode of Galaxy's file, and keeps routing when an admin switches it to WAL", async (t) => {
  const { dir, a, b } = await fixture(t);
  const writer = new SqlAlchemyItWriter(join(dir, 'interactivetools_map.sqlite'));
  t.after(() => writer.close());
  writer.save({ key: 'k1', token: 't1', host: '127.0.0.1', port: a.port });
  const proxy = await startInProcessProxy(t, { sessionsPath: writer.path, pathPrefix: PREFIX });
  let next = proxy.logs.next(MAP_LOG.reloaded, 5000);
  writer.save({ key: 'k2', token: 't2', host: '127.0.0.1', port: b.port });
  await next;
  assert.equal(writer.connection().pragma('journal_mode', { simple: true }), 'delete');
  assert.equal(existsSync(`${writer.path}-wal`), false, 'no -wal file: nothing switched the file to WAL');
  // An admin's choice, not ours: WAL is followed too.
  writer.exec('PRAGMA journal_mode=WAL');
  next = proxy.logs.next(MAP_LOG.reloaded, 5000);
  writer.save({ key: 'k3', token: 't3', host: '127.0.0.1', port: b.port });
  await next;
  assert.equal((JSON.parse((await request(proxy.port, { path: `${PREFIX}/k3/t3/` })).body) as Seen).upstream, 'b');
});

test('a broken read keeps the last good entry points; the next good write is routed', async (t) => {
  const { dir, a } = await fixture(t);
  const path = join(dir, 'interactivetools_map.sqlite');
  const writer = new LegacyItWriter(path);
  writer.save({ key: 'k1', token: 't1', host: '127.0.0.1', port: a.port });
  const proxy = await startInProcessProxy(t, { sessionsPath: path, pathPrefix: PREFIX });
  const warned = proxy.logs.next(MAP_LOG.unreadable, 5000);
  writeFileSync(path, 'SQLite format 3\0 but not a database, truncated');
  const warning = await warned;
  assert.equal(warning.reason, 'corrupt');
  // The entry points kept, not the (empty) cookie table's size.
  assert.equal(warning.sessions, 1);
  assert.equal((await request(proxy.port, { path: `${PREFIX}/k1/t1/` })).status, 200);
  const back = proxy.logs.next(MAP_LOG.readableAgain, 5000);
  unlinkSync(path);
  writer.save({ key: 'k2', token: 't2', host: '127.0.0.1', port: a.port });
  await back;
  assert.equal((await request(proxy.port, { path: `${PREFIX}/k2/t2/` })).status, 200);
  assert.equal((await request(proxy.port, { path: `${PREFIX}/k1/t1/` })).status, 404, 'the new file no longer holds k1');
});

test('100,000 entry points: read on the reader thread, each Galaxy commit applied as a diff', async (t) => {
  const { dir, a, b } = await fixture(t);
  const path = join(dir, 'interactivetools_map.sqlite');
  const writer = new GalaxyItWriterProcess(path, 'sqlalchemy');
  t.after(() => writer.close());
  const COUNT = 100_000;
  await writer.send({ op: 'fill', count: COUNT, host: '127.0.0.1', port: a.port }, 120_000);
  const proxy = await startInProcessProxy(t, { sessionsPath: path, pathPrefix: PREFIX });
  assert.equal(proxy.logs.withMsg(MAP_LOG.reloaded)[0]?.sessions, COUNT);
  for (const i of [0, COUNT / 2, COUNT - 1]) {
    const { key, token } = entryPointKey(i);
    assert.equal((await request(proxy.port, { path: `${PREFIX}/${key}/${token}/` })).status, 200);
  }
  const reloaded = (sessions: number) => proxy.logs.next(MAP_LOG.reloaded, 10_000, (l) => l.sessions === sessions && l.update === 'diff');
  let next = reloaded(COUNT + 1);
  await writer.send({ op: 'save', entry: { key: 'newcomer', token: 'tn', host: '127.0.0.1', port: b.port } });
  await next;
  assert.equal((JSON.parse((await request(proxy.port, { path: `${PREFIX}/newcomer/tn/` })).body) as Seen).upstream, 'b');
  const moved = entryPointKey(7);
  next = reloaded(COUNT + 1);
  await writer.send({ op: 'save', entry: { ...moved, token: 'renewed', host: '127.0.0.1', port: b.port } });
  await next;
  assert.equal((await request(proxy.port, { path: `${PREFIX}/${moved.key}/${moved.token}/` })).status, 404);
  assert.equal((JSON.parse((await request(proxy.port, { path: `${PREFIX}/${moved.key}/renewed/` })).body) as Seen).upstream, 'b');
  next = reloaded(COUNT);
  await writer.send({ op: 'remove', key: 'newcomer' });
  await next;
  assert.equal((await request(proxy.port, { path: `${PREFIX}/newcomer/tn/` })).status, 404);
});
