/**
 * The CLI's garbage collections around large map reads (src/cli/run.ts,
 * DaemonHooks, reader-thread.ts), seen in V8's own GC trace of a real
 * lib/main.js: `node --trace-gc` prints one line per collection, tagged with
 * the isolate (each thread has its own) and, for a call of V8's `gc`, the
 * reason `testing`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { freePort } from '../helpers/ports.js';
import { MAIN_JS, ProxyProcess } from '../helpers/spawned-proxy.js';
import { waitUntil } from '../helpers/wait.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

/** The isolate of each collection V8's `gc` made, in order: `[pid:0xADDR] ... testing; ...`. */
function gcCalls(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('[') && /Mark-Compact.*\btesting\b/.test(l))
    .map((l) => /^\[\d+:(0x[0-9a-f]+)\]/.exec(l)?.[1] ?? '?');
}

test('lib/main.js collects its main thread once after the start-up read, before it listens, and the reader thread its own heap after each whole read', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  // A map whose whole reads leave megabytes behind.
  map.addMany(Array.from({ length: 10_500 }, (_, i): [string, string, number] => [`session${i}`, '127.0.0.1', 10_000 + (i % 50_000)]));
  const port = await freePort();
  const proxy = new ProxyProcess(
    spawn(process.execPath, ['--trace-gc', MAIN_JS, '--sessions', map.path, '--ip', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  t.after(() => proxy.kill());
  await proxy.started(30_000);
  const atListening = gcCalls(proxy.stdout.slice(0, proxy.stdout.indexOf('"proxy listening"')));

  const sighupAt = proxy.stdout.length;
  const reloaded = proxy.logs.next(MAP_LOG.reloaded, 30_000, (l) => l.update === 'full');
  proxy.child.kill('SIGHUP');
  await reloaded;
  // The start-up read is the reader thread's (it starts with the daemon), so
  // two isolates collect: the main thread once, after the start-up read and
  // before it listens; the thread after each whole read, the start-up one
  // and the SIGHUP's (each follows its reply: the first may come after the
  // start-up line). The main thread collects nothing after it listens.
  const thread = await waitUntil('a collection after the SIGHUP', () => gcCalls(proxy.stdout.slice(sighupAt))[0], { timeoutMs: 10_000, everyMs: 20 });
  await waitUntil("the thread's second collection", () => gcCalls(proxy.stdout).filter((isolate) => isolate === thread).length >= 2, { timeoutMs: 10_000, everyMs: 20 });
  const main = gcCalls(proxy.stdout).filter((isolate) => isolate !== thread);
  assert.equal(main.length, 1, `the main thread is collected once: ${JSON.stringify(gcCalls(proxy.stdout))}`);
  assert.deepEqual(atListening.filter((isolate) => isolate !== thread), main, 'the main thread is collected before the start-up line');

  // A commit read as changes makes no whole read: no collection.
  const before = gcCalls(proxy.stdout).length;
  const diff = proxy.logs.next(MAP_LOG.reloaded, 30_000, (l) => l.update === 'diff');
  map.addSession('late', '127.0.0.1', 9000);
  await diff;
  assert.equal(gcCalls(proxy.stdout).length, before);
  proxy.child.kill('SIGTERM');
  assert.equal((await proxy.exit(10_000)).code, 0);
});
