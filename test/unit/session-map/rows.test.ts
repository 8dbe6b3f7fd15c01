import { test } from 'node:test';
import assert from 'node:assert/strict';
import { align, invalidTargetReason, rowLine } from '../../../src/session-map/rows.js';

test('entry validation reasons', () => {
  assert.equal(invalidTargetReason('h', 80), undefined);
  assert.equal(invalidTargetReason('h', '8080'), undefined);
  assert.equal(invalidTargetReason('', 80), 'missing host');
  assert.equal(invalidTargetReason(null, 80), 'missing host');
  assert.equal(invalidTargetReason('a b', 80), 'malformed host');
  assert.equal(invalidTargetReason('h', 'x'), 'non-numeric port');
  assert.equal(invalidTargetReason('h', 0), 'port out of range');
  assert.equal(invalidTargetReason('h', 65536), 'port out of range');
  assert.equal(invalidTargetReason('h', 1.5), 'port out of range');
});

test('align finds appended, removed, changed and moved rows', () => {
  const rows = (keys: string[]) => keys.map((k) => rowLine(k, 'h', String(k.length + 8000))).join('');
  const base = rows(['a', 'bb', 'ccc', 'dd', 'e']);
  assert.deepEqual(align(base, rows(['a', 'bb', 'ccc', 'dd', 'e', 'f'])), { removed: '', inserted: rows(['f']) });
  assert.deepEqual(align(base, rows(['a', 'bb', 'dd', 'e'])), { removed: rows(['ccc']), inserted: '' });
  assert.deepEqual(align(base, rows(['a', 'ccc', 'dd', 'e', 'bb'])), { removed: rows(['bb']), inserted: rows(['bb']) });
  assert.deepEqual(align(base, rows(['x', 'a', 'bb', 'ccc', 'dd', 'e'])), { removed: '', inserted: rows(['x']) });
  const changed = base.replace('ccc\th\t8003', 'ccc\th\t9003');
  assert.deepEqual(align(base, changed), { removed: rows(['ccc']), inserted: 'ccc\th\t9003\n' });
});
