import type { TestContext } from 'node:test';
import { join } from 'node:path';
import type { ProxyOptions } from '../../src/cli/options.js';
import { startTestProxy, type TestProxy } from './daemon.js';
import { GalaxySqliteWriter, tempDir } from './galaxy-map.js';
import { startUpstream, type Handler, type Upstream } from './upstream.js';

/** An echo upstream closed when the test ends. */
export async function upstreamFor(t: TestContext, name: string, handler?: Handler): Promise<Upstream> {
  const upstream = await startUpstream(name, handler);
  t.after(() => upstream.close());
  return upstream;
}

/**
 * A session map in a temp dir written with Galaxy's statements (session key →
 * port on 127.0.0.1) and an in-process proxy reading it; all removed when the
 * test ends.
 */
export async function mappedProxy(
  t: TestContext,
  sessions: Record<string, number>,
  options: Partial<ProxyOptions> = {},
): Promise<TestProxy & { map: GalaxySqliteWriter; dir: string }> {
  const tmp = tempDir();
  t.after(tmp.remove);
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  for (const [key, port] of Object.entries(sessions)) map.addSession(key, '127.0.0.1', port);
  const proxy = await startTestProxy({ sessionsPath: map.path, ...options });
  t.after(() => proxy.close());
  return { ...proxy, map, dir: tmp.dir };
}
