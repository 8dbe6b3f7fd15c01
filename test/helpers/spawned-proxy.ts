import { spawnProxy, type ProxyProcess } from './child.js';
import { freePort } from './ports.js';

/** A spawned lib/main.js listening on 127.0.0.1, started. */
export interface SpawnedProxy {
  proc: ProxyProcess;
  pid: number;
  port: number;
}

/**
 * Spawns lib/main.js on a free loopback port with `--sessions` and extra
 * flags, waits for its start-up line and kills it in t.after.
 */
export async function startSpawnedProxy(
  t: { after: (fn: () => unknown) => void },
  sessionsPath: string,
  args: string[] = [],
): Promise<SpawnedProxy> {
  const port = await freePort();
  const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', sessionsPath, ...args]);
  t.after(() => proc.kill());
  await proc.started(10_000);
  return { proc, pid: proc.child.pid ?? 0, port };
}

/** True while the child has not exited. */
export function alive(proxy: SpawnedProxy): boolean {
  return proxy.proc.child.exitCode === null && proxy.proc.child.signalCode === null;
}
