import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { checkEntryPointRow, checkRow, ENTRY_POINT_SKIP, infoFlags, parseRoutableEntryPoint, splitIdentity } from '../../../src/session-map/rows.js';
import { toSnapshot } from '../../../src/admin/check.js';
import { SqliteSessionMap } from '../../../src/session-map/file/sqlite-store.js';
import { galaxyInfo, LegacyItWriter, SqlAlchemyItWriter } from '../../helpers/galaxy-it-map.js';
import { tempDir } from '../../helpers/galaxy-map.js';
import { whole } from '../../helpers/map-read.js';

test("info: Galaxy's JSON (>= 23.1) and NULL (older) become flags; anything else is a skip reason", () => {
  assert.equal(infoFlags(''), '0');
  assert.equal(infoFlags('null'), '0');
  assert.equal(infoFlags(galaxyInfo(false, null)), '0');
  assert.equal(infoFlags(galaxyInfo(null, null)), '0');
  assert.equal(infoFlags(galaxyInfo(true, null)), '1');
  assert.equal(infoFlags(galaxyInfo(false, 'X-My-Header')), '0X-My-Header');
  assert.equal(infoFlags(galaxyInfo(true, 'X-My-Header')), '1X-My-Header');
  assert.equal(infoFlags('{"requires_path_in_header_named": ""}'), '0');
  assert.equal(infoFlags('{}'), '0');
  assert.equal(infoFlags('{"other": 1}'), '0');
  for (const bad of ['{', '{"requires_path_in_url": tru}', 'not json', "{'a': 1}"]) assert.equal(infoFlags(bad), ENTRY_POINT_SKIP.infoNotJson, bad);
  for (const bad of ['[]', '1', '"x"', '{"requires_path_in_url": "yes"}', '{"requires_path_in_url": 1}', '{"requires_path_in_header_named": "bad name"}', '{"requires_path_in_header_named": 5}', '{"requires_path_in_header_named": "X:Y"}']) {
    assert.equal(infoFlags(bad), ENTRY_POINT_SKIP.infoUnusable, bad);
  }
});

test('raw rows: checked with the shared host/port rules, the identity is key TAB key_type', () => {
  assert.deepEqual(checkEntryPointRow(`k\tinteractivetoolentrypoint\tt\t10.0.0.1\t8888\t${galaxyInfo(true, 'X-A')}`), {
    id: 'k\tinteractivetoolentrypoint',
    value: 't\t10.0.0.1\t8888\t1X-A',
  });
  const cases: [string, string][] = [
    ['\tx\tt\th\t1\t', ENTRY_POINT_SKIP.missingKey],
    ['k\u0001\tx\tt\th\t1\t', ENTRY_POINT_SKIP.malformedKey],
    ['k\tx\t\th\t1\t', ENTRY_POINT_SKIP.missingToken],
    ['k\tx\tt\u0001\th\t1\t', ENTRY_POINT_SKIP.malformedToken],
    ['k\tx\tt\t\t1\t', 'missing host'],
    ['k\tx\tt\th\t\t', 'non-numeric port'],
    ['k\tx\tt\th\t0\t', 'port out of range'],
    ['k\tx\tt\tbad host\t1\t', 'malformed host'],
    ['k\tx\tt\th\t1\t{', ENTRY_POINT_SKIP.infoNotJson],
    ['k\tx\tt\th\t1\t[]', ENTRY_POINT_SKIP.infoUnusable],
  ];
  for (const [line, problem] of cases) assert.deepEqual(checkEntryPointRow(line), { problem }, JSON.stringify(line));
  // A tab inside info is part of info (it comes last).
  assert.deepEqual(checkEntryPointRow('k\tx\tt\th\t1\t{"requires_path_in_url":\ttrue}'), { id: 'k\tx', value: 't\th\t1\t1' });
});

test('routable rows back to table rows; identities split', () => {
  assert.deepEqual(parseRoutableEntryPoint('k\tx\tt\t10.0.0.1\t8888\t1X-A\n'), {
    key: 'k',
    keyType: 'x',
    token: 't',
    host: '10.0.0.1',
    port: 8888,
    requiresPathInUrl: true,
    requiresPathInHeaderNamed: 'X-A',
  });
  assert.equal(parseRoutableEntryPoint('k\tx\tt\th\t1\t0').requiresPathInHeaderNamed, undefined);
  assert.deepEqual(splitIdentity('k\tx'), ['k', 'x']);
  assert.deepEqual(splitIdentity('k'), ['k', '']);
});

test('the SQLite store reads gxitproxy as both Galaxy writers write it: NULLs as empty fields, a newline anywhere never splits a row', () => {
  const { dir, remove } = tempDir();
  try {
    for (const [name, writer] of [
      ['a.sqlite', (p: string) => new SqlAlchemyItWriter(p)],
      ['b.sqlite', (p: string) => new LegacyItWriter(p)],
    ] as const) {
      const w = writer(join(dir, name));
      w.save({ key: 'k1', token: 't1', host: '10.0.0.1', port: 8888, requiresPathInHeaderNamed: 'X-A' });
      w.save({ key: 'k2', token: 't2', host: null, port: null, info: null });
      w.save({ key: 'k3', token: 'bad\ntoken', host: 'h', port: 1, info: '{\n"requires_path_in_url": true}' });
      w.save({ key: 'k4', keyType: 'other', token: 't4', host: 'h', port: 2, info: '{"requires_path_in_url": true}' });
      w.save({ key: 'k5', token: 't5', host: 'h', port: 3 }); // Galaxy's default info
      w.close();
      const store = new SqliteSessionMap(join(dir, name));
      const read = whole(store.read(true));
      store.close();
      assert.equal(read.format, 'sqlite gxitproxy');
      assert.equal(read.routing, 'entry-point');
      assert.equal(read.uniqueKeys, true, `${name}: PRIMARY KEY (key, key_type)`);
      const lines = read.rows.split('\n').slice(0, -1);
      assert.equal(lines.length, 5);
      assert.equal(lines[4], 'k5\t\u0002\tt5\th\t3\t');
      // Galaxy's key type and default info in their short forms.
      assert.equal(lines[0], `k1\t\u0002\tt1\t10.0.0.1\t8888\t${galaxyInfo(false, 'X-A')}`);
      assert.equal(lines[1], 'k2\t\u0002\tt2\t\t\t');
      assert.deepEqual(checkRow('entry-point', lines[0]), { id: 'k1\tinteractivetoolentrypoint', value: 't1\t10.0.0.1\t8888\t0X-A' });
      assert.deepEqual(checkRow('entry-point', lines[2]), { problem: ENTRY_POINT_SKIP.malformedToken });
      const snapshot = toSnapshot(read);
      assert.deepEqual([...snapshot.skipped].sort(), [['malformed token', 1], ['missing host', 1]]);
      assert.deepEqual([...snapshot.routes.keys()], [`k1 token ${tag('t1')}`, `k4 (other) token ${tag('t4')}`, `k5 token ${tag('t5')}`], 'listed by key and token tag');
    }
  } finally {
    remove();
  }
});

function tag(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 10);
}
