/**
 * The README's "Listening on a unix socket" blocks run for real: nginx and
 * Apache in front of two spawned proxies on unix sockets, the GIE one routing
 * session cookies from a SQLite session map and gx-it-proxy routing
 * Interactive Tools from a gxitproxy map (by path and by name), HTTP and
 * WebSocket. One front-server start serves both modes. And nginx whose worker
 * is not in the socket's group gets 502.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cookie, request } from '../helpers/client.js';
import { SESSION, assertRoutesThrough, startFrontServer } from '../helpers/front-server.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX, saveAndWait, startItProxy } from '../helpers/it-proxy.js';
import { startNginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { MAIN_JS, ProxyProcess, spawnProxy } from '../helpers/spawned-proxy.js';
import { runBounded, stopChild } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { upstreamFor, type Seen, type Upstream } from '../helpers/upstream.js';

const DOMAIN = 'galaxy.example.org';
const ENTRY = { key: '24q1dbzrknq1v', token: '1a1p13jnahscj' };
const BY_NAME = `${ENTRY.key}-${ENTRY.token}.ep.interactivetool.${DOMAIN}`;
const README_GIE_SOCKET = '/run/galaxy-gie-proxy/proxy.sock';
const README_IT_SOCKET = '/run/gx-it-proxy/proxy.sock';

/** Both proxies on sockets in `dir`, their containers, and Galaxy. */
interface Proxies {
  dir: string;
  gieSocket: string;
  itSocket: string;
  galaxy: Upstream;
}

/**
 * The GIE proxy (session cookie SESSION → a Jupyter stand-in) and gx-it-proxy
 * (entry point ENTRY → the same stand-in, `--proxyPathPrefix`), each spawned
 * with `--socket` in a directory other users may enter, so that only the
 * socket's mode keeps them out.
 */
async function proxiesOnSockets(t: TestContext): Promise<Proxies> {
  const tmp = tempDir('gie-sock-');
  t.after(tmp.remove);
  chmodSync(tmp.dir, 0o755);
  const container = await upstreamFor(t, 'jupyter');
  const galaxy = await upstreamFor(t, 'galaxy');
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession(SESSION, '127.0.0.1', container.port);
  const gieSocket = join(tmp.dir, 'gie.sock');
  const gie = spawnProxy(['--sessions', map.path, '--socket', gieSocket]);
  t.after(() => gie.kill());
  const itSocket = join(tmp.dir, 'it.sock');
  const it = await startItProxy(t, ['--socket', itSocket], 'gx-it-proxy');
  await gie.started();
  assert.equal((await it.proc.started()).socket, itSocket);
  await saveAndWait(it, [{ ...ENTRY, host: '127.0.0.1', port: container.port, requiresPathInUrl: false }]);
  return { dir: tmp.dir, gieSocket, itSocket, galaxy };
}

/** The URL the container saw for a WebSocket opened through `port` with `host`, after one echoed message. */
async function itWebSocket(port: number, host: string, path: string): Promise<string> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host }, handshakeTimeout: 5000 });
  // The container's hello can come in the same read as the 101: listen before 'open'.
  const hello = once(ws, 'message') as Promise<[Buffer]>;
  try {
    await once(ws, 'open');
    const [greeting] = await hello;
    ws.send('ping');
    const [echo] = (await once(ws, 'message')) as [Buffer];
    assert.equal(echo.toString(), 'ping');
    return (JSON.parse(greeting.toString()) as { url: string }).url;
  } finally {
    ws.terminate();
  }
}

/** Interactive Tools through a front server on `port`: by path and by name, HTTP and WebSocket; Galaxy's own paths to Galaxy. */
async function assertItRoutesThrough(port: number): Promise<void> {
  const get = async (host: string, path: string): Promise<{ status: number; seen?: Seen; body: string }> => {
    const r = await request(port, { path, headers: { host } });
    return { status: r.status, body: r.body, seen: r.status === 200 ? (JSON.parse(r.body) as Seen) : undefined };
  };
  const byPath = await get(DOMAIN, `${IT_PREFIX}/${ENTRY.key}/${ENTRY.token}/api/contents?type=directory`);
  assert.equal(byPath.status, 200, byPath.body);
  assert.equal(byPath.seen?.upstream, 'jupyter');
  assert.equal(byPath.seen?.url, '/api/contents?type=directory');
  assert.equal(byPath.seen?.headers.host, DOMAIN);
  const byName = await get(BY_NAME, '/tree?token=abc');
  assert.equal(byName.status, 200, byName.body);
  assert.equal(byName.seen?.url, '/tree?token=abc');
  assert.equal(byName.seen?.headers.host, BY_NAME);
  assert.equal((await get(DOMAIN, '/api/version')).seen?.upstream, 'galaxy');
  const wrongToken = await get(DOMAIN, `${IT_PREFIX}/${ENTRY.key}/wrongtoken000/`);
  assert.equal(wrongToken.status, 404, 'the proxy\'s own answer comes back');
  const channel = '/api/kernels/k1/channels?session_id=s1';
  assert.equal(await itWebSocket(port, DOMAIN, `${IT_PREFIX}/${ENTRY.key}/${ENTRY.token}${channel}`), channel);
  assert.equal(await itWebSocket(port, BY_NAME, channel), channel);
}

/** The README's nginx locations for the GIE proxy on a socket, pointed at `socket`. */
function readmeNginxGie(socket: string): string {
  return adapt(readmeBlock('nginx', '# galaxy-gie-proxy --socket'), README_GIE_SOCKET, socket);
}

/** The README's Interactive Tools servers, with the README's socket `proxy_pass` in place of the TCP one. */
function readmeNginxIt(port: number, socket: string, galaxyPort: number): string {
  const socketLine = readmeBlock('nginx', '# gx-it-proxy --socket')
    .split('\n')
    .find((line) => line.startsWith('proxy_pass '));
  assert.ok(socketLine, 'the README block has a proxy_pass line');
  let conf = readmeBlock('nginx', '# Interactive Tools by name:');
  conf = adapt(conf, 'proxy_pass http://127.0.0.1:4002;', adapt(socketLine, README_IT_SOCKET, socket));
  conf = adapt(conf, 'listen 443 ssl;', `listen 127.0.0.1:${port};`);
  return adapt(conf, 'http://127.0.0.1:8080', `http://127.0.0.1:${galaxyPort}`);
}

test('nginx with the README socket blocks: GIE session cookies and Interactive Tools (path and name), HTTP and WebSocket; a worker outside the socket\'s group gets 502', { timeout: 60_000 }, async (t) => {
  const proxies = await proxiesOnSockets(t);
  const [giePort, itPort] = [await freePort(), await freePort()];
  const servers = `  server {
    listen 127.0.0.1:${giePort};
${readmeNginxGie(proxies.gieSocket)}
  }
${readmeNginxIt(itPort, proxies.itSocket, proxies.galaxy.port)}`;
  if (!(await startNginx(t, proxies.dir, servers, giePort))) return;
  await assertRoutesThrough(giePort);
  await assertItRoutesThrough(itPort);

  // The same locations, nginx's worker running as nobody: not the socket's owner
  // (root) nor in its group, so the 0660 socket refuses it.
  const outsider = join(proxies.dir, 'nginx-nobody');
  mkdirSync(outsider);
  const outsiderPort = await freePort();
  const outsiderServer = `  server {
    listen 127.0.0.1:${outsiderPort};
${readmeNginxGie(proxies.gieSocket)}
  }`;
  const group = /^nogroup:/m.test(readFileSync('/etc/group', 'utf8')) ? 'nogroup' : 'nobody';
  await startNginx(t, outsider, outsiderServer, outsiderPort, { user: `nobody ${group}` });
  const refused = await request(outsiderPort, { path: '/galaxy/gie_proxy/jupyter/ipython/tree', headers: cookie(SESSION) });
  assert.equal(refused.status, 502);
  assert.match(readFileSync(join(outsider, 'error.log'), 'utf8'), /connect\(\) to unix:.*gie\.sock failed \(13: Permission denied\)/);
});

test('Apache with the README socket blocks (upgrade=websocket): GIE session cookies and Interactive Tools (path and name), HTTP and WebSocket', { timeout: 60_000 }, async (t) => {
  const apache = requireTool(t, 'apache2', 'apt-get install apache2');
  if (apache === undefined) return;
  const proxies = await proxiesOnSockets(t);
  const [giePort, itPort] = [await freePort(), await freePort()];
  const gieRoutes = adapt(readmeBlock('apache', '# galaxy-gie-proxy --socket'), README_GIE_SOCKET, proxies.gieSocket);
  let itHosts = adapt(readmeBlock('apache', '# gx-it-proxy --socket'), README_IT_SOCKET, proxies.itSocket);
  itHosts = adapt(itHosts, '<VirtualHost *:443>', `<VirtualHost 127.0.0.1:${itPort}>`);
  itHosts = adapt(itHosts, 'http://127.0.0.1:8080/', `http://127.0.0.1:${proxies.galaxy.port}/`);
  const modules = '/usr/lib/apache2/modules';
  // prefork: with -X (one process in the foreground) the threaded MPMs take
  // their whole shutdown timeout to stop. No mod_proxy_wstunnel: upgrade=websocket is mod_proxy_http's.
  writeFileSync(
    join(proxies.dir, 'httpd.conf'),
    [
      `ServerRoot ${proxies.dir}`,
      `DefaultRuntimeDir ${proxies.dir}`,
      `PidFile ${join(proxies.dir, 'httpd.pid')}`,
      `ErrorLog ${join(proxies.dir, 'error.log')}`,
      'LogLevel warn',
      'ServerName localhost',
      `Listen 127.0.0.1:${giePort}`,
      `Listen 127.0.0.1:${itPort}`,
      ...['mpm_prefork', 'authz_core', 'proxy', 'proxy_http'].map((m) => `LoadModule ${m}_module ${join(modules, `mod_${m}.so`)}`),
      `<VirtualHost 127.0.0.1:${giePort}>`,
      gieRoutes,
      '</VirtualHost>',
      itHosts,
    ].join('\n'),
  );
  await startFrontServer(t, apache, ['-X', '-d', proxies.dir, '-f', join(proxies.dir, 'httpd.conf')], giePort);
  await assertRoutesThrough(giePort);
  await assertItRoutesThrough(itPort);
});

/**
 * The README's systemd unit with the README's socket lines in place of its
 * ExecStart, for a Galaxy at `root`, run as root (systemd-analyze checks the
 * user exists), the socket under `runDir` instead of /run.
 */
function socketUnit(root: string, runDir: string): string {
  const lines = readmeBlock('ini', '# galaxy-gie-proxy on a unix socket under systemd').replace(/^#.*\n/, '');
  let unit = readmeBlock('ini', '# /etc/systemd/system/galaxy-gie-proxy.service\n');
  unit = unit.replace(/^ExecStart=.*\n/m, lines);
  unit = adapt(unit, 'ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
  unit = adapt(unit, '/srv/galaxy', root);
  unit = adapt(unit, '/run/galaxy-gie-proxy/proxy.sock', join(runDir, 'proxy.sock'));
  return adapt(adapt(unit, 'User=galaxy', 'User=root'), 'Group=galaxy', 'Group=root');
}

test('the README\'s systemd lines for a socket: the unit passes systemd-analyze verify, and its ExecStart listens on the socket (0660) from the WorkingDirectory', { timeout: 60_000 }, async (t) => {
  const tmp = tempDir('gie-sock-');
  t.after(tmp.remove);
  const root = join(tmp.dir, 'galaxy');
  mkdirSync(join(root, 'lib', 'galaxy', 'web', 'proxy'), { recursive: true });
  mkdirSync(join(root, 'database'));
  symlinkSync(join(MAIN_JS, '..', '..'), join(root, 'lib', 'galaxy', 'web', 'proxy', 'js'));
  // RuntimeDirectory= would make it: here the test does.
  const runDir = join(tmp.dir, 'run');
  mkdirSync(runDir, { mode: 0o750 });
  const unit = socketUnit(root, runDir);
  assert.match(unit, /^RuntimeDirectory=galaxy-gie-proxy$/m);

  const analyze = requireTool(t, 'systemd-analyze', 'apt-get install systemd');
  if (analyze !== undefined) {
    const file = join(tmp.dir, 'galaxy-gie-proxy.service');
    writeFileSync(file, unit);
    const verified = await runBounded(analyze, ['verify', '--man=no', file], { timeoutMs: 30_000, allowFailure: true });
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), '', 'no warning');
  }

  const container = await upstreamFor(t, 'jupyter');
  new GalaxySqliteWriter(join(root, 'database', 'session_map.sqlite')).addSession(SESSION, '127.0.0.1', container.port);
  const [command, ...args] = (/^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '').split(' ');
  const proxy = new ProxyProcess(spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] }));
  t.after(() => stopChild(proxy.child));
  const socket = join(runDir, 'proxy.sock');
  assert.equal((await proxy.started()).socket, socket);
  assert.equal(statSync(socket).mode & 0o777, 0o660);
  assert.equal((await request(0, { socketPath: socket, headers: cookie(SESSION) })).status, 200);
});
