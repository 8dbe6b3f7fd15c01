import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sessionTag } from '../../src/log.js';

test('log fields: a session appears as a short stable tag', () => {
  const key = 'f00dfeed'.repeat(4);
  assert.equal(sessionTag(key), sessionTag(key));
  assert.match(sessionTag(key), /^[0-9a-f]{10}$/);
  assert.notEqual(sessionTag(key), sessionTag(`${key}x`));
  assert.ok(!key.includes(sessionTag(key)));
});
