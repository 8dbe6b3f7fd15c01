/**
 * The package as `npm pack` makes it, run once with `npx ./<tarball>`.
 *
 * npx installs the tarball and its dependencies into its cache. That cache is
 * kept per tree in node_modules/.cache (removed by `npm ci`), with npm's
 * content cache shared through a link so no download is repeated: a fresh
 * clone (CI) installs from scratch, compiling the SQLite driver when no
 * prebuilt binary can be had; a re-run re-installs only the package itself.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyProcess } from '../helpers/spawned-proxy.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { cookie, request } from '../helpers/client.js';
import { PACKAGE, REPO_ROOT, npmEnv, npxCache, packTarball, type PackedTarball } from '../helpers/package.js';
import { freePort } from '../helpers/ports.js';
import { runBounded, runningProcesses, stopChild } from '../helpers/processes.js';
import { waitUntil } from '../helpers/wait.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';
import { CLI_LOG } from '../../src/cli/run.js';

/** The first npx run may compile better-sqlite3: about a minute on two busy cores. */
const FIRST_RUN_TIMEOUT_MS = 480_000;

const workspace = tempDir('gie-npx-');
after(() => workspace.remove());

let packing: Promise<PackedTarball> | undefined;
const tarball = (): Promise<PackedTarball> => (packing ??= packTarball(workspace.dir));

/** `npx --yes --prefer-offline ./<tarball> ...args` in the tarball's directory. */
async function npxArgs(args: string[]): Promise<{ argv: string[]; env: NodeJS.ProcessEnv }> {
  const { filename } = await tarball();
  return { argv: ['--yes', '--prefer-offline', `./${filename}`, ...args], env: npmEnv({ npm_config_cache: await npxCache(), npm_config_update_notifier: 'false' }) };
}

test('npm pack holds the built lib/, bin/, README, LICENSE and package.json, and no tests or sources', async () => {
  const packed = await tarball();
  assert.equal(packed.filename, `${PACKAGE.name}-${PACKAGE.version}.tgz`);
  const { stdout } = await runBounded('tar', ['tzf', packed.path], { timeoutMs: 30_000 });
  const entries = stdout.trim().split('\n').sort();
  for (const required of ['package/package.json', 'package/README.md', 'package/LICENSE', 'package/bin/galaxy-gie-proxy.js', 'package/lib/main.js', 'package/lib/cli/run.js', 'package/lib/session-map/reader-thread.js', 'package/lib/session-map/postgres/gxitproxy-trigger.sql', 'package/lib/index.js', 'package/lib/index.d.ts']) {
    assert.ok(entries.includes(required), `${required} in ${entries.join(', ')}`);
  }
  const unexpected = entries.filter((e) => !/^package\/(package\.json|README\.md|LICENSE|bin\/[^/]+\.js|lib\/([a-z-]+\/){0,2}[^/]+\.(js|d\.ts|sql))$/.test(e));
  assert.deepEqual(unexpected, [], 'only the built package: no src/, test/, source maps or configs');
  assert.deepEqual(entries.filter((e) => /\/(src|test)\//.test(e)), []);
  const { stdout: verbose } = await runBounded('tar', ['tvzf', packed.path], { timeoutMs: 30_000 });
  assert.match(verbose, /^-rwxr-xr-x .* package\/lib\/main\.js$/m, 'lib/main.js keeps its run bit');
  assert.match(verbose, /^-rwxr-xr-x .* package\/bin\/galaxy-gie-proxy\.js$/m);
});

test('the README shows the one-off npx command for the tarball', async () => {
  const { filename } = await tarball();
  assert.ok(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8').includes(`npx --yes ./${filename} `));
});

test('npx ./<tarball> --version installs the package and prints the version', { timeout: FIRST_RUN_TIMEOUT_MS + 30_000 }, async (t) => {
  const { argv, env } = await npxArgs(['--version']);
  const result = await runBounded('npx', argv, { cwd: workspace.dir, env, timeoutMs: FIRST_RUN_TIMEOUT_MS });
  t.diagnostic(`npx ${argv.join(' ')}: exit ${String(result.code)} in ${result.ms} ms`);
  assert.equal(result.stdout, `${PACKAGE.version}\n`);
});

test('a real run from npx ./<tarball>: routes by the session map, stops cleanly on SIGTERM to its process group, leaves nothing running', { timeout: FIRST_RUN_TIMEOUT_MS + 60_000 }, async (t) => {
  const upstream = await startUpstream('rstudio');
  const map = new GalaxySqliteWriter(join(workspace.dir, 'session_map.sqlite'));
  map.addSession('npx-session', '127.0.0.1', upstream.port);
  const port = await freePort();
  const { argv, env } = await npxArgs(['--sessions', map.path, '--ip', '127.0.0.1', '--port', String(port)]);
  const child = spawn('npx', argv, { cwd: workspace.dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const proxy = new ProxyProcess(child);
  t.after(async () => {
    await stopChild(child, { group: true });
    await upstream.close();
  });
  const started = await proxy.started(FIRST_RUN_TIMEOUT_MS);
  assert.equal(started.version, PACKAGE.version);
  const r = await request(port, { headers: cookie('npx-session') });
  assert.equal(r.status, 200);
  assert.equal((JSON.parse(r.body) as Seen).upstream, 'rstudio');

  // npm runs the bin through `sh -c`, which does not pass a signal on: stop
  // the process group, as Ctrl-C in a terminal does (SIGINT) and as systemd
  // and supervisord (stopasgroup) do (SIGTERM).
  const group = runningProcesses().filter((p) => p.pgid === child.pid);
  t.diagnostic(`process group: ${group.map((p) => `${p.pid} ${p.argv.slice(0, 2).join(' ')}`).join(' | ')}`);
  process.kill(-child.pid!, 'SIGTERM');
  const { code, signal, ms } = await proxy.exit(10_000);
  const stopped = await proxy.logs.waitFor((l) => l.msg === CLI_LOG.stopped, 10_000);
  t.diagnostic(`SIGTERM to the group: npx ended by ${String(code ?? signal)} after ${ms} ms; the proxy logged "stopped" (graceful: ${String(stopped.graceful)})`);
  await waitUntil('the process group to be empty', () => runningProcesses().every((p) => p.pgid !== child.pid), { timeoutMs: 10_000 });
});
