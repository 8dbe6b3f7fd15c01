/**
 * The proxy as Galaxy runs it: the package packed with `npm pack`, installed
 * with `npm ci` into a Galaxy-shaped tree (lib/galaxy/web/proxy/js/), started
 * by a Python script that does what Galaxy's proxy manager does.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { once } from 'node:events';
import { tempDir } from '../helpers/galaxy-map.js';
import { cookie, request } from '../helpers/client.js';
import { LogCapture, type LogLine } from '../helpers/logs.js';
import { REPO_ROOT, npmEnv, packTarball } from '../helpers/package.js';
import { freePort } from '../helpers/ports.js';
import { isAlive, runBounded, runningProcesses, stopChild } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';
import { DAEMON_LOG } from '../../src/daemon.js';

const GALAXY_SPAWN_PY = fileURLToPath(new URL('../helpers/galaxy_spawn.py', import.meta.url));
/** npm ci compiles better-sqlite3 when no prebuilt binary can be had: about a minute on two busy cores. */
const INSTALL_TIMEOUT_MS = 480_000;

interface GalaxyTree {
  root: string;
  /** <root>/lib/galaxy/web/proxy/js, where Galaxy expects the proxy. */
  js: string;
  installMs: number;
}

const workspace = tempDir('gie-galaxy-');
after(() => workspace.remove());

let installing: Promise<GalaxyTree> | undefined;
/**
 * Packs this tree and installs the tarball where Galaxy keeps its proxy, once
 * per file: extract the package, put the lockfile of the same version beside
 * it, `npm ci --omit=dev` (the package's `prepare` builds only where there is
 * a src/ to build, so it does nothing here).
 */
function galaxyTree(): Promise<GalaxyTree> {
  installing ??= (async () => {
    const root = join(workspace.dir, 'galaxy');
    const js = join(root, 'lib', 'galaxy', 'web', 'proxy', 'js');
    mkdirSync(js, { recursive: true });
    mkdirSync(join(root, 'database'));
    const tarball = await packTarball(workspace.dir);
    await runBounded('tar', ['-xzf', tarball.path, '--strip-components=1', '-C', js], { timeoutMs: 30_000 });
    copyFileSync(join(REPO_ROOT, 'package-lock.json'), join(js, 'package-lock.json'));
    const { ms } = await runBounded('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: js,
      env: npmEnv(),
      timeoutMs: INSTALL_TIMEOUT_MS,
    });
    return { root, js, installMs: ms };
  })();
  return installing;
}

test('the packed package installs with npm ci into lib/galaxy/web/proxy/js: an executable lib/main.js, runtime dependencies only', { timeout: INSTALL_TIMEOUT_MS + 60_000 }, async (t) => {
  const { js, installMs } = await galaxyTree();
  t.diagnostic(`npm ci --omit=dev in the Galaxy tree took ${installMs} ms`);
  const main = join(js, 'lib', 'main.js');
  assert.equal(readFileSync(main, 'utf8').split('\n')[0], '#!/usr/bin/env node');
  assert.equal(statSync(main).mode & 0o111, 0o111, 'lib/main.js is executable');
  assert.ok(existsSync(join(js, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')), 'the SQLite driver was built');
  assert.ok(existsSync(join(js, 'node_modules', 'prom-client')));
  for (const absent of ['src', 'test', 'tsconfig.json', join('node_modules', 'typescript'), join('node_modules', 'tsx')]) {
    assert.equal(existsSync(join(js, absent)), false, `${absent} is not installed`);
  }
  assert.deepEqual(readdirSync(js).sort(), ['LICENSE', 'README.md', 'bin', 'lib', 'node_modules', 'package-lock.json', 'package.json']);
});

test('Galaxy spawns it (argv list, no shell, close_fds), writes the map, routes; SIGTERM then SIGKILL 10 ms later leaves nothing running', { timeout: INSTALL_TIMEOUT_MS + 60_000 }, async (t) => {
  const python = requireTool(t, 'python3', 'apt-get install python3');
  if (python === undefined) return;
  const { root, js } = await galaxyTree();
  const upstream = await startUpstream('jupyter');
  const port = await freePort();
  const script = spawn(
    python,
    [GALAXY_SPAWN_PY, '--proxy-js', js, '--port', String(port), '--key', 'gx-session-1', '--container-port', String(upstream.port)],
    {
      cwd: root,
      // Galaxy's environment: `#!/usr/bin/env node` finds node on PATH.
      env: { ...npmEnv(), PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const out = new LogCapture();
  let stderr = '';
  script.stdout.on('data', (c: Buffer) => out.feed(c.toString('utf8')));
  script.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  let proxyPid: number | undefined = undefined;
  t.after(async () => {
    await stopChild(script, { signal: 'SIGKILL' });
    if (proxyPid !== undefined && isAlive(proxyPid)) process.kill(proxyPid, 'SIGKILL');
    await upstream.close();
  });
  const event = (name: string, timeoutMs = 30_000): Promise<LogLine> =>
    out.waitFor((l) => l.event === name, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}\nstderr: ${stderr}`);
    });

  const spawned = await event('spawned');
  proxyPid = spawned.pid as number;
  assert.deepEqual(spawned.argv, [join(js, 'lib', 'main.js'), '--sessions', 'database/session_map.sqlite', '--ip', '127.0.0.1', '--port', String(port), '--reverseProxy']);
  const routed = await event('routed');
  // No shell in between: the proxy is Python's direct child, node (found by the
  // shebang's env) running the tree's main.js.
  const proxyProcess = runningProcesses().find((p) => p.pid === proxyPid);
  assert.equal(proxyProcess?.argv[1], join(js, 'lib', 'main.js'), proxyProcess?.argv.join(' '));
  assert.equal(proxyProcess?.ppid, script.pid, 'parent is the Galaxy process');
  t.diagnostic(`spawn → first routed request: ${String(routed.ms)} ms (${String(routed.attempts)} polls, as Galaxy's page polls)`);
  assert.equal(routed.status, 200);
  assert.equal((JSON.parse(routed.body as string) as Seen).upstream, 'jupyter');
  const started = out.lines.find((l) => l.msg === DAEMON_LOG.listening);
  assert.equal(started?.sessions, join(root, 'database', 'session_map.sqlite'), 'the map path is resolved against Galaxy\'s working directory');

  // In between, the proxy routes HTTP and Jupyter's kernel WebSocket for that session.
  const r = await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/api/contents', headers: cookie('gx-session-1') });
  assert.equal((JSON.parse(r.body) as Seen).url, '/galaxy/gie_proxy/jupyter/ipython/api/contents');
  const ws = new WebSocket(`ws://127.0.0.1:${port}/galaxy/gie_proxy/jupyter/ipython/api/kernels/k1/channels?session_id=s1`, { headers: cookie('gx-session-1') });
  t.after(() => ws.terminate());
  const [hello] = (await once(ws, 'message')) as [Buffer];
  assert.equal((JSON.parse(hello.toString()) as { url: string }).url, '/galaxy/gie_proxy/jupyter/ipython/api/kernels/k1/channels?session_id=s1');

  // Galaxy shuts down: SIGTERM, 10 ms, SIGKILL if still running.
  script.stdin.end('stop\n');
  const stopped = await event('stopped');
  t.diagnostic(`Galaxy's shutdown: returncode ${String(stopped.returncode)}, SIGKILL sent: ${String(stopped.sigkill_sent)}, ${String(stopped.ms)} ms`);
  assert.ok(stopped.returncode === 0 || stopped.returncode === -9, `exit 0 on SIGTERM, or killed by the SIGKILL: ${String(stopped.returncode)}`);
  const [code] = (await once(script, 'exit')) as [number | null];
  assert.equal(code, 0, stderr);
  assert.equal(isAlive(proxyPid), false);
  await assert.rejects(request(port, { timeoutMs: 1000 }), /ECONNREFUSED/);
  const leftovers = runningProcesses().filter((p) => p.argv.some((a) => a.startsWith(root)));
  assert.deepEqual(leftovers, [], 'no process runs from the Galaxy tree');
});
