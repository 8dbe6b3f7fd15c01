import type { TestContext } from 'node:test';
import { join } from 'node:path';
import { spawnProxy, type ProxyProcess } from './child.js';
import { SqlAlchemyItWriter, type EntryPointWrite } from './galaxy-it-map.js';
import { tempDir } from './galaxy-map.js';
import { freePort } from './ports.js';

/** gravity's `--proxyPathPrefix` with Galaxy's defaults. */
export const IT_PREFIX = '/interactivetool/ep';

export interface ItProxy {
  proc: ProxyProcess;
  port: number;
  map: SqlAlchemyItWriter;
  dir: string;
}

/** A spawned proxy on a gxitproxy map that does not exist yet (Galaxy ≥ 24.2's writer makes it), with `args` added. */
export async function startItProxy(t: TestContext, args: string[] = [], bin: 'main' | 'gx-it-proxy' = 'main'): Promise<ItProxy> {
  const tmp = tempDir();
  const map = new SqlAlchemyItWriter(join(tmp.dir, 'interactivetools_map.sqlite'));
  t.after(() => {
    map.close();
    tmp.remove();
  });
  const port = await freePort();
  const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', map.path, '--proxyPathPrefix', IT_PREFIX, ...args], { bin });
  t.after(() => proc.kill());
  await proc.started(10_000);
  return { proc, port, map, dir: tmp.dir };
}

/** Saves entry points with Galaxy's statements and waits until the proxy has read them. */
export async function saveAndWait(proxy: ItProxy, entries: EntryPointWrite[]): Promise<void> {
  const from = proxy.proc.logs.lines.length;
  for (const e of entries) proxy.map.save(e);
  const total = entries.length;
  await proxy.proc.logs.waitFor((l) => l.msg === 'session map reloaded' && (l.sessions as number) >= total, 10_000, from);
}

