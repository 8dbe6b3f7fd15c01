import { fileURLToPath } from 'node:url';
import { MAIN_JS, ProxyProcess } from '../helpers/spawned-proxy.js';
import { freePort } from '../helpers/ports.js';
import type { BenchResources } from './processes.js';
import { waitForLine } from './processes.js';

const NODE_BACKEND = fileURLToPath(new URL('./node-backend.ts', import.meta.url));

/** Something listening on 127.0.0.1 whose CPU and memory the benchmark reads. */
export interface Listening {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
}

/** Starts test/bench/node-backend.ts as its own process. */
export async function startNodeBackend(resources: BenchResources): Promise<Listening> {
  const child = resources.spawn(process.execPath, ['--import', 'tsx', NODE_BACKEND]);
  const line = await waitForLine(child, (l) => l.startsWith('{"port"'), 'node backend');
  child.stdout?.resume();
  return { name: 'node backend', pid: child.pid!, port: (JSON.parse(line) as { port: number }).port };
}

export interface ProxySpec {
  readonly name: string;
  readonly sessionsPath: string;
  readonly cookie: string;
  /** Sessions the start-up read must report (checks the map was read whole). */
  readonly expectedRoutes: number;
  /** Write a V8 CPU profile of this proxy into this directory when it stops. */
  readonly cpuProfDir?: string | undefined;
}

export type RunningProxy = Listening & { readonly proxy: ProxyProcess };

/**
 * Spawns the proxy built from this tree (lib/main.js, as Galaxy does, argv
 * list, no shell) on a free loopback port and waits for its start-up line.
 */
export async function startProxy(resources: BenchResources, spec: ProxySpec): Promise<RunningProxy> {
  const port = await freePort();
  const nodeFlags =
    spec.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', spec.cpuProfDir, '--cpu-prof-name', `${spec.name}.cpuprofile`];
  const args = [...nodeFlags, MAIN_JS, '--sessions', spec.sessionsPath, '--ip', '127.0.0.1', '--port', String(port), '--cookie', spec.cookie];
  const proxy = new ProxyProcess(resources.spawn(process.execPath, args));
  const started = await proxy.started(30_000);
  if (started.routes !== spec.expectedRoutes) {
    throw new Error(`${spec.name} started with ${String(started.routes)} routes, expected ${spec.expectedRoutes}`);
  }
  return { name: spec.name, pid: proxy.child.pid!, port, proxy };
}
