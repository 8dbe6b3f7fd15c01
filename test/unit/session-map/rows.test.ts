import { test } from 'node:test';
import assert from 'node:assert/strict';
import { invalidTargetReason } from '../../../src/session-map/rows.js';

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
