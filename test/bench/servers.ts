import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { MAIN_JS, ProxyProcess } from '../helpers/spawned-proxy.js';
import { freePort } from '../helpers/ports.js';
import type { BenchResources } from './processes.js';
import { waitForLine } from './processes.js';
import { onCores } from './steady.js';

const NODE_BACKEND = fileURLToPath(new URL('./node-backend.ts', import.meta.url));
const REFERENCE_SOURCE = fileURLToPath(new URL('./reference-proxy.ts', import.meta.url));
/**
 * The reference runs as plain JavaScript, like lib/main.js: under tsx it
 * would carry a module-loader thread (and its memory) that the proxy does
 * not. It is compiled beside the dependencies it imports.
 */
const REFERENCE_BUILT = fileURLToPath(new URL('../../node_modules/.cache/galaxy-gie-proxy-bench/reference-proxy.mjs', import.meta.url));

function buildReference(): string {
  const source = readFileSync(REFERENCE_SOURCE, 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    fileName: REFERENCE_SOURCE,
  });
  mkdirSync(dirname(REFERENCE_BUILT), { recursive: true });
  writeFileSync(REFERENCE_BUILT, outputText);
  return REFERENCE_BUILT;
}

/** Something listening on 127.0.0.1 whose CPU and memory the benchmark reads. */
export interface Listening {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
}

/** Starts test/bench/node-backend.ts as its own process (on `cores`). */
export async function startNodeBackend(resources: BenchResources, cores: string | undefined): Promise<Listening> {
  const child = resources.spawn(...onCores(cores, process.execPath, ['--import', 'tsx', NODE_BACKEND]));
  const line = await waitForLine(child, (l) => l.startsWith('{"port"'), 'node backend');
  child.stdout?.resume();
  return { name: 'node backend', pid: child.pid!, port: (JSON.parse(line) as { port: number }).port };
}

export interface ProxySpec {
  readonly name: string;
  readonly sessionsPath: string;
  /** Cookie to route by (the CLI's default when absent). */
  readonly cookie?: string;
  /** Sessions the start-up read must report (checks the map was read whole). */
  readonly expectedRoutes: number;
  /** Write a V8 CPU profile of this proxy into this directory when it stops. */
  readonly cpuProfDir?: string | undefined;
  /** Cores it runs on (taskset), or anywhere. */
  readonly cores: string | undefined;
  /** More command-line flags (e.g. Interactive Tools routing). */
  readonly extraArgs?: readonly string[];
  /** Another build's lib/main.js (test/bench/compare-builds.ts); this tree's by default. */
  readonly mainJs?: string;
}

export type RunningProxy = Listening & { readonly proxy: ProxyProcess };

/**
 * Spawns the proxy built from this tree (lib/main.js, as Galaxy does, argv
 * list, no shell) on a free loopback port and waits for its start-up line.
 */
export async function startProxy(resources: BenchResources, spec: ProxySpec): Promise<RunningProxy> {
  const port = await freePort();
  // A directory per proxy: its reader thread writes a profile of its own (under Node's default name, with the thread id).
  const nodeFlags = spec.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(spec.cpuProfDir, spec.name)];
  const args = [
    ...nodeFlags,
    spec.mainJs ?? MAIN_JS,
    '--sessions',
    spec.sessionsPath,
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    ...(spec.cookie === undefined ? [] : ['--cookie', spec.cookie]),
    ...(spec.extraArgs ?? []),
  ];
  const proxy = new ProxyProcess(resources.spawn(...onCores(spec.cores, process.execPath, args)));
  const started = await proxy.started(30_000);
  if (started.routes !== spec.expectedRoutes) {
    throw new Error(`${spec.name} started with ${String(started.routes)} routes, expected ${spec.expectedRoutes}`);
  }
  return { name: spec.name, pid: proxy.child.pid!, port, proxy };
}

/**
 * Starts the bare reference proxy (test/bench/reference-proxy.ts, a
 * measuring stick, see there) on the same map, and checks it read every route.
 */
export async function startReferenceProxy(
  resources: BenchResources,
  spec: { name: string; sessionsPath: string; cookie: string; expectedRoutes: number; cores: string | undefined; cpuProfDir?: string | undefined },
): Promise<Listening & { readonly child: ChildProcess }> {
  const nodeFlags =
    spec.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', spec.cpuProfDir, '--cpu-prof-name', `${spec.name}.cpuprofile`];
  const child = resources.spawn(...onCores(spec.cores, process.execPath, [...nodeFlags, buildReference(), spec.sessionsPath, spec.cookie]));
  const line = await waitForLine(child, (l) => l.startsWith('{"port"'), spec.name, 60_000);
  child.stdout?.resume();
  const { port, routes } = JSON.parse(line) as { port: number; routes: number };
  if (routes !== spec.expectedRoutes) throw new Error(`${spec.name} read ${routes} routes, expected ${spec.expectedRoutes}`);
  return { name: spec.name, pid: child.pid!, port, child };
}
