/**
 * Reading a session map the way the daemon does (the store kind for the path,
 * one read, closed), for the store tests.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { SessionMapError, type MapAnswer, type MapRead } from '../../src/session-map/store.js';
import { toSnapshot, type SessionMapSnapshot } from '../../src/admin/check.js';
import { storeKindFor } from '../../src/session-map/stores.js';
import { tempDir } from './galaxy-map.js';

/** Opens the store the daemon would open for `path`. */
export const openSessionMap = (path: string) => storeKindFor(path).open(path);

/** A temp dir removed when the test ends. */
export function temp(t: TestContext): string {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  return tmp.dir;
}

/** One read of the map at `path`, as a snapshot. */
export async function read(path: string): Promise<SessionMapSnapshot> {
  const source = openSessionMap(path);
  try {
    return toSnapshot(whole(await source.read(true)));
  } finally {
    source.close();
  }
}

/** A store's answer that must be the whole map (a forced read, a first read). */
export function whole(answer: MapAnswer): MapRead {
  if (answer.kind !== 'whole') assert.fail(`a ${answer.kind} answer where the whole map was due`);
  return answer;
}

/** The snapshot's routes as `key → host:port`. */
export const targets = (s: SessionMapSnapshot): Record<string, string> =>
  Object.fromEntries([...s.routes].map(([k, { host, port }]) => [k, `${host}:${port}`]));

/** The SessionMapError a read of `path` fails with (fails the test if the read succeeds). */
export async function failure(path: string): Promise<SessionMapError> {
  try {
    await read(path);
  } catch (err) {
    assert.ok(err instanceof SessionMapError, String(err));
    return err;
  }
  assert.fail(`reading ${path} did not fail`);
}
