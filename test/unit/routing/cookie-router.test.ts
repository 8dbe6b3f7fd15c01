import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sessionKeyFrom } from '../../../src/routing/cookie-router.js';

test('session cookie: exact raw value of the named cookie, never throws', () => {
  assert.equal(sessionKeyFrom('galaxysession=abc', 'galaxysession'), 'abc');
  assert.equal(sessionKeyFrom('a=1; galaxysession=abc%2F; b=2', 'galaxysession'), 'abc%2F', 'not URL-decoded');
  assert.equal(sessionKeyFrom('xgalaxysession=abc', 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom('galaxysession=', 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom(undefined, 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom('other=1', 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom('galaxysession="q"', 'galaxysession'), '"q"', 'exactly as sent');
  assert.equal(sessionKeyFrom('mysession=z', 'mysession'), 'z');
  for (const garbage of [';;;', '=', 'galaxysession', 'galaxysession=%E0%A4%A', '\u0000galaxysession=\uffff', 'galaxysession=a=b=c']) {
    assert.doesNotThrow(() => sessionKeyFrom(garbage, 'galaxysession'));
  }
});
