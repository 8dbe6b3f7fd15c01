import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { startUpstream, upstreamFor, type Handler } from '../helpers/upstream.js';
import { cookie, rawExchange, request } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { MAIN_JS, spawnProxy, startSpawnedProxy, type ProxyProcess } from '../helpers/spawned-proxy.js';
import { MAX_TIMER_MS } from '../../src/options.js';
import { DAEMON_LOG } from '../../src/daemon.js';
import { CLI_LOG } from '../../src/cli/run.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';
import { HTTP_LOG } from '../../src/http/server.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** Runs the CLI to completion; resolves with its exit code and output. */
async function runCli(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN_JS, ...args], { cwd, timeout: 10_000, env: { ...process.env, COLUMNS: '80' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A Galaxy-written map with one session on a fresh upstream, and a spawned proxy. */
async function running(t: TestContext, extraArgs: string[] = [], upstreamHandler?: Handler) {
  const tmp = tempDir();
  t.after(tmp.remove);
  const upstream = await upstreamFor(t, 'a', upstreamHandler);
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession('alice', '127.0.0.1', upstream.port);
  const { proc, port } = await startSpawnedProxy(t, map.path, extraArgs);
  return { tmp, upstream, map, port, proc };
}

test('--help prints exactly the usage shown in the README', async () => {
  const { code, stdout } = await runCli(['--help']);
  assert.equal(code, 0);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /`node lib\/main\.js --help` prints[^\n]*\n\n```\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has the help block');
  assert.equal(stdout, block[1]);
});

test('-V and --version print the package version', async () => {
  for (const flag of ['-V', '--version']) {
    const { code, stdout } = await runCli([flag]);
    assert.equal(code, 0);
    assert.equal(stdout.trim(), PKG.version);
  }
});

test('bad flags and values exit 2 with one clear line and the usage hint, before starting', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--bogus'], /^error: unknown option '--bogus'$/m],
    [['--port', '0'], /^error: option '--port <n>' argument '0' is invalid\. must be an integer from 1 to 65535\.$/m],
    [['--port', '65536'], /argument '65536' is invalid/],
    [['--port', 'abc'], /argument 'abc' is invalid/],
    [['--port'], /^error: option '--port <n>' argument missing$/m],
    [['--cookie', 'bad name'], /^error: option '--cookie <cookiename>' argument 'bad name' is invalid\. must be a cookie name: letters, digits and .*\.$/m],
    [['--log-mask-params', 'api_key,a=b'], /^error: option '--log-mask-params <names>' argument 'api_key,a=b' is invalid\. "a=b" is not a query parameter name .*\.$/m],
    [['extra-argument'], /^error: too many arguments/m],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await runCli(args);
    assert.equal(code, 2, `${args.join(' ')} → exit ${code}`);
    assert.match(stderr, message);
    assert.match(stderr, /\(run with --help for usage\)/);
    assert.equal(stdout, '', 'nothing was started');
  }
});

test("Galaxy's spawn line runs the executable lib/main.js: routes, logs requests with --verbose, exits 0 at once on SIGTERM", async (t) => {
  const tmp = tempDir();
  const upstream = await startUpstream('a');
  t.after(async () => {
    await upstream.close();
    tmp.remove();
  });
  const sessions = join(tmp.dir, 'session_map.sqlite');
  const port = await freePort();
  // Exactly as Galaxy builds it: argv list, no shell, map not created yet.
  const proc = spawnProxy(['--sessions', sessions, '--ip', '127.0.0.1', '--port', String(port), '--reverseProxy', '--verbose'], { executable: true });
  t.after(() => proc.kill());
  const start = await proc.started();
  assert.equal(start.version, PKG.version);
  assert.equal(start.port, port);
  assert.equal(start.sessions, sessions);
  assert.equal(start.cookie, 'galaxysession');
  const reloaded = proc.logs.next(MAP_LOG.reloaded, 2000, (l) => l.sessions === 1);
  new GalaxySqliteWriter(sessions).addSession('alice', '127.0.0.1', upstream.port);
  await reloaded;
  assert.equal((await request(port, { path: '/x?y=1', headers: cookie('alice') })).status, 200);
  const line = await proc.logs.waitFor((l) => l.msg === HTTP_LOG.request);
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/x?y=1');
  assert.equal(line.status, 200);
  assert.equal(line.target, `127.0.0.1:${upstream.port}`);
  assert.equal(typeof line.ms, 'number');
  proc.child.kill('SIGTERM');
  const exit = await proc.exit(2000);
  t.diagnostic(`idle SIGTERM → exit in ${exit.ms} ms`);
  assert.equal(exit.code, 0);
  assert.ok(exit.ms < 1000, `exit took ${exit.ms} ms`);
});

test('the npm bin entry runs the same CLI', async () => {
  const { stdout } = await run(process.execPath, [join(ROOT, 'bin', 'galaxy-gie-proxy.js'), '--version'], { timeout: 10_000 });
  assert.equal(stdout.trim(), PKG.version);
});

test('without --sessions the map is database/session_map.sqlite under the working directory', async (t) => {
  const tmp = tempDir();
  mkdirSync(join(tmp.dir, 'database'));
  const port = await freePort();
  const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port)], { cwd: tmp.dir });
  t.after(() => {
    proc.kill();
    tmp.remove();
  });
  const start = await proc.started();
  assert.equal(start.sessions, join(tmp.dir, 'database', 'session_map.sqlite'));
  assert.equal(start.address, '127.0.0.1');
});

test('a port in use: one fatal line naming the address and the cause, exit 1 within a second', async (t) => {
  const blocker = net.createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.after(() => blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  const spawnedAt = Date.now();
  const proc = spawnProxy(['--sessions', '/nonexistent/map.sqlite', '--ip', '127.0.0.1', '--port', String(port)]);
  t.after(() => proc.kill());
  const exit = await proc.exit(5000);
  assert.equal(exit.code, 1);
  t.diagnostic(`listen failure: exit 1 ${Date.now() - spawnedAt} ms after spawn (node start-up included)`);
  const fatal = proc.logs.lines.filter((l) => l.level === 'fatal');
  assert.equal(fatal.length, 1);
  assert.equal(fatal[0].msg, `cannot listen on 127.0.0.1:${port}: address already in use (is another proxy running?)`);
  assert.equal(fatal[0].code, 'EADDRINUSE');
  assert.equal(proc.logs.withMsg(DAEMON_LOG.listening).length, 0);
});

test('SIGTERM lets an in-flight request finish, refuses new connections, then exits 0', async (t) => {
  let release: () => void = () => {};
  let arrived: () => void = () => {};
  const requestArrived = new Promise<void>((r) => (arrived = r));
  const { port, proc } = await running(t, [], (req, res) => {
    if (req.url !== '/slow') return false;
    arrived();
    release = () => res.end('done');
    return true;
  });
  const pending = request(port, { path: '/slow', headers: cookie('alice') });
  await requestArrived;
  proc.child.kill('SIGTERM');
  await proc.logs.waitFor((l) => l.msg === CLI_LOG.shuttingDown);
  await assert.rejects(request(port, { headers: cookie('alice'), timeoutMs: 1000 }), /ECONNREFUSED|ECONNRESET/);
  assert.equal(proc.child.exitCode, null, 'still draining');
  release();
  const reply = await pending;
  assert.equal(reply.status, 200);
  assert.equal(reply.body, 'done');
  const exit = await proc.exit(3000);
  assert.equal(exit.code, 0);
  assert.equal(proc.logs.withMsg(CLI_LOG.stopped)[0]?.graceful, true);
});

test('SIGTERM: a request still running after --shutdown-grace is cut and the proxy exits 0', async (t) => {
  let arrived: () => void = () => {};
  const requestArrived = new Promise<void>((r) => (arrived = r));
  const { port, proc } = await running(t, ['--shutdown-grace', '300'], (req) => {
    if (req.url !== '/never') return false;
    arrived();
    return true; // never answers
  });
  const pending = request(port, { path: '/never', headers: cookie('alice') }).then(
    () => 'answered',
    (err: Error) => err.message,
  );
  await requestArrived;
  const t0 = Date.now();
  proc.child.kill('SIGTERM');
  const exit = await proc.exit(3000);
  assert.equal(exit.code, 0);
  assert.ok(Date.now() - t0 >= 250, 'waited for the grace period');
  assert.match(await pending, /socket hang up|ECONNRESET/);
  assert.equal(proc.logs.withMsg(CLI_LOG.stoppedCut).length, 1);
});

test('a second signal exits at once with status 1', async (t) => {
  let arrived: () => void = () => {};
  const requestArrived = new Promise<void>((r) => (arrived = r));
  const { port, proc } = await running(t, ['--shutdown-grace', '60000'], (req) => {
    if (req.url !== '/never') return false;
    arrived();
    return true;
  });
  const pending = request(port, { path: '/never', headers: cookie('alice') }).catch(() => undefined);
  await requestArrived;
  proc.child.kill('SIGTERM');
  await proc.logs.waitFor((l) => l.msg === CLI_LOG.shuttingDown);
  proc.child.kill('SIGINT');
  const exit = await proc.exit(2000);
  assert.equal(exit.code, 1);
  await pending;
});

test('SIGTERM closes open WebSockets', async (t) => {
  const { port, proc } = await running(t);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/kernels/k`, { headers: cookie('alice') });
  await once(ws, 'message');
  const closed = once(ws, 'close');
  proc.child.kill('SIGTERM');
  await closed;
  assert.equal((await proc.exit(3000)).code, 0);
});

test('SIGHUP re-reads the session map', async (t) => {
  const { proc } = await running(t);
  const reloaded = proc.logs.next(MAP_LOG.reloaded, 3000);
  proc.child.kill('SIGHUP');
  const line = await reloaded;
  assert.equal(line.sessions, 1);
  assert.equal(proc.child.exitCode, null);
});

test('malformed HTTP and garbage on the socket get 400 and leave the process serving', async (t) => {
  const { port, proc } = await running(t);
  const inputs = [
    'GARBAGE\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=\x01\x02\r\n\r\n',
    'GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
    `GET / HTTP/1.1\r\nHost: x\r\nCookie: ${'galaxysession=%%%;'.repeat(500)}\r\n\r\n`,
    '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', // a TLS ClientHello on the plain port
  ];
  for (const input of inputs) {
    const { text } = await rawExchange(port, input, 2000);
    assert.match(text, /^HTTP\/1\.1 (400|404) /, JSON.stringify(input.slice(0, 30)));
  }
  assert.equal((await request(port, { headers: cookie('alice') })).status, 200);
  assert.equal(proc.child.exitCode, null);
  assert.equal(proc.logs.lines.filter((l) => l.level === 'error' || l.level === 'fatal').length, 0);
});

export type { ProxyProcess };

test('command line: the hardening flags parse; bad values exit 2 before anything starts', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--headers-timeout', 'soon'], /--headers-timeout <ms>.*whole number of milliseconds/],
    [['--proxy-timeout', String(MAX_TIMER_MS + 1)], /--proxy-timeout <ms>.*from 0 to 2147483647/],
    [['--ws-idle-timeout', '-5'], /--ws-idle-timeout <ms>/],
    [['--cors-origin', 'https://ok.example,galaxy.example.org'], /option '--cors-origin <origins>' argument .* is invalid\. "galaxy\.example\.org" must be an origin/],
  ];
  for (const [args, message] of cases) {
    const proc = spawnProxy(['--sessions', '/nonexistent/map.sqlite', '--port', '1', ...args]);
    const { code } = await proc.exit();
    assert.equal(code, 2, args.join(' '));
    assert.match(proc.stderr, message);
  }
});

test('command line: the hardening flags reach the proxy', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const proxy = await startSpawnedProxy(t, join(tmp.dir, 'session_map.sqlite'), [
    '--headers-timeout', '300', '--proxy-timeout', '2000', '--ws-idle-timeout', '3000', '--xfwd',
    '--cors-origin', 'https://a.example, https://b.example:8443',
  ]);
  const granted = await request(proxy.port, { headers: { origin: 'https://b.example:8443' } });
  assert.equal(granted.headers['access-control-allow-origin'], 'https://b.example:8443');
  const refused = await request(proxy.port, { headers: { origin: 'https://c.example' } });
  assert.equal(refused.headers['access-control-allow-origin'], undefined);
  const silent = await rawExchange(proxy.port, '', 3000);
  assert.ok(silent.closedByServer, '--headers-timeout 300 dropped a silent client');
  assert.match(silent.text, /^HTTP\/1\.1 408 /);
});
