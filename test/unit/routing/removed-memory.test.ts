import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { RemovedMemory } from '../../../src/routing/removed-memory.js';

test('RemovedMemory: the key with exactly its token, of its kind; never the token itself in memory', () => {
  const memory = new RemovedMemory();
  // Dots never occur in the base64url hashes, so the key or token cannot show up in one by chance.
  memory.remember('entry-point', 'tool.key', 'secret.token.1');
  assert.equal(memory.has('entry-point', 'tool.key', 'secret.token.1'), true);
  assert.equal(memory.has('entry-point', 'tool.key', 'secret.token.2'), false);
  assert.equal(memory.has('entry-point', 'tool.keysecret.', 'token.1'), false, 'no key/token split of the same bytes');
  assert.equal(memory.has('session', 'tool.key', 'secret.token.1'), false);
  assert.doesNotMatch(inspect(memory, { depth: 5, showHidden: true }), /secret\.token|tool\.key/);
  const other = new RemovedMemory();
  assert.equal(other.has('entry-point', 'tool.key', 'secret.token.1'), false, 'each process has its own hash key');
});

test('RemovedMemory is bounded: the oldest go first, and nothing is kept past the TTL', () => {
  let now = 0;
  const memory = new RemovedMemory(3, 1000, () => now);
  for (const key of ['a', 'b', 'c', 'd']) memory.remember('session', key);
  assert.equal(memory.size, 3);
  assert.equal(memory.has('session', 'a'), false);
  assert.equal(memory.has('session', 'd'), true);
  memory.remember('session', 'b'); // removed again: the youngest now
  memory.remember('session', 'e');
  assert.equal(memory.has('session', 'b'), true);
  assert.equal(memory.has('session', 'c'), false);
  now = 1000;
  assert.equal(memory.has('session', 'd'), true);
  now = 1001;
  assert.equal(memory.has('session', 'd'), false);
});
