/**
 * A producer's handover with the differ's text held once (handover.ts): what
 * the reader thread starts with is exactly what the main thread handed over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serialize } from 'node:v8';
import { shareRows, unshareRows, type ProducerHandover } from '../../../src/session-map/handover.js';

const rows = Array.from({ length: 100 }, (_, i) => `session${i}\t127.0.0.1\t${8000 + i}\n`).join('');

test('the text the store shares with the differ is posted once and comes back where it was; other values as they were', () => {
  const handover: ProducerHandover = {
    differ: { format: 'sqlite gxproxy2', rows, sessions: 100, rowSkips: [['missing host', 1]] },
    store: { sqlite: { base: rows, table: 'gxproxy2', rowids: new Float64Array([1, 2]), added: [[3, 'carol\t127.0.0.1\t8003\n']], other: `${rows}x` } },
  };
  const posted = structuredClone(shareRows(handover));
  const store = posted.store as { sqlite: { base: string; other: string } };
  assert.notEqual(store.sqlite.base, rows, 'the shared text is not in the store part');
  assert.equal(store.sqlite.other, `${rows}x`, 'a string that is not the text itself stays');
  assert.ok(serialize(handover).length - serialize(posted).length >= rows.length - 64);
  assert.deepEqual(unshareRows(posted), handover);
});

test('a handover without a last read, or whose store shares nothing, comes back as it was', () => {
  const none: ProducerHandover = { differ: undefined, store: { sqlite: { base: rows } } };
  assert.deepEqual(unshareRows(structuredClone(shareRows(none))), none);
  const apart: ProducerHandover = { differ: { format: 'json', rows, sessions: 100, rowSkips: [] }, store: undefined };
  assert.deepEqual(unshareRows(structuredClone(shareRows(apart))), apart);
});
