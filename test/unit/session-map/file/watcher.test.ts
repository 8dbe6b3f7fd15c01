import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MapWatcher } from '../../../../src/session-map/file/watcher.js';
import { tempDir } from '../../../helpers/galaxy-map.js';

test('the watcher folds a burst of file events into one notification', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'session_map.sqlite');
  let notified = 0;
  let onNotify: () => void = () => {};
  const watcher = new MapWatcher(path, { pollIntervalMs: 3_600_000, debounceMs: 30 }, () => {
    notified++;
    onNotify();
  });
  t.after(() => watcher.close());
  assert.ok(watcher.watching);
  // Bounded waits; the pending timer also keeps the loop alive (the watcher itself does not).
  const next = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no notification within 2 s')), 2000);
      onNotify = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let first = next();
  for (let i = 0; i < 20; i++) writeFileSync(path, String(i)); // lock, journal, commit … in a few ms
  await first;
  // A later event in another file of the map's family arrives after the burst's notification.
  first = next();
  writeFileSync(`${path}-journal`, 'x');
  await first;
  assert.equal(notified, 2, `20 writes and 1 later write gave ${notified} notifications`);
  // Files that do not belong to the map are ignored.
  writeFileSync(join(tmp.dir, 'other.txt'), 'x');
  first = next();
  writeFileSync(`${path}.lock`, '');
  await first;
  assert.equal(notified, 3);
});
