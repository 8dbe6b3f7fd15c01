/**
 * `--socket`: the spawned CLI listening on a unix socket. HTTP and WebSocket
 * through it, its mode (and what another user can do with it), a stale
 * socket replaced, a live one or a file in the way refused with exit 2 and
 * left alone, the file gone after SIGTERM, X-Forwarded-* with --xfwd.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cookie, request } from '../helpers/client.js';
import { webSocketEcho } from '../helpers/front-server.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { spawnProxy, type ProxyProcess } from '../helpers/spawned-proxy.js';
import { upstreamFor, type Seen, type Upstream } from '../helpers/upstream.js';
import { DAEMON_LOG } from '../../src/daemon.js';
import { CLI_LOG } from '../../src/cli/run.js';

const run = promisify(execFile);
const RUNUSER = '/usr/sbin/runuser';

interface Setup {
  dir: string;
  sock: string;
  map: string;
  upstream: Upstream;
}

/** A temp dir others may enter, a map with alice on a fresh container, and where the socket goes. */
async function setup(t: TestContext): Promise<Setup> {
  const tmp = tempDir('gie-sock-');
  t.after(tmp.remove);
  // Another user must reach the socket through the directory (mkdtemp makes it 0700).
  chmodSync(tmp.dir, 0o755);
  const upstream = await upstreamFor(t, 'a');
  const writer = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  writer.addSession('alice', '127.0.0.1', upstream.port);
  return { dir: tmp.dir, sock: join(tmp.dir, 'gie.sock'), map: writer.path, upstream };
}

/** The CLI on `sock`, killed in t.after. */
function spawnOnSocket(t: TestContext, s: Setup, args: string[] = []): ProxyProcess {
  const proc = spawnProxy(['--sessions', s.map, '--socket', s.sock, ...args]);
  t.after(() => proc.kill());
  return proc;
}

/** A socket file nobody listens on: a process that bound it and was SIGKILLed, as after a crash. */
async function leaveStaleSocket(path: string): Promise<void> {
  const script = `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  await run(process.execPath, ['-e', script], { timeout: 10_000 }).catch(() => undefined);
  assert.ok(lstatSync(path).isSocket(), 'the crashed process left its socket');
}

/** What `user` gets from GET / on the socket: the status, or the connect error's code. */
async function getAs(user: string, sock: string): Promise<string> {
  const script = `require('node:http').get({ socketPath: ${JSON.stringify(sock)}, path: '/' }, (res) => { console.log(res.statusCode); res.resume(); }).on('error', (e) => console.log(e.code))`;
  const { stdout } = await run(RUNUSER, ['-u', user, '--', process.execPath, '-e', script], { timeout: 10_000 });
  return stdout.trim();
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

/** The URL the container saw for a WebSocket through the socket, after one echoed message. */
function webSocketVia(sock: string, path: string): Promise<string> {
  return webSocketEcho(`ws+unix://${sock}:${path}`, cookie('alice'));
}

test('HTTP and WebSocket through the socket; mode 0660 before the start-up line; the file is gone after SIGTERM (exit 0)', async (t) => {
  const s = await setup(t);
  const proc = spawnOnSocket(t, s);
  const start = await proc.started();
  assert.equal(start.socket, s.sock);
  assert.equal(start.socketMode, '0660');
  assert.equal(start.port, undefined, 'no port: --ip/--port are not used');
  assert.equal(start.address, undefined);
  // Stated right at the start-up line: the mode is set before it is logged.
  assert.equal(modeOf(s.sock).toString(8), '660');
  assert.equal(proc.logs.withMsg(DAEMON_LOG.staleSocketReplaced).length, 0, 'nothing was replaced');

  const get = await request(0, { socketPath: s.sock, path: '/tree?token=t', headers: cookie('alice') });
  assert.equal(get.status, 200, get.body);
  assert.equal((JSON.parse(get.body) as Seen).url, '/tree?token=t');
  assert.equal((await request(0, { socketPath: s.sock, headers: cookie('nobody') })).status, 404);
  assert.equal(await webSocketVia(s.sock, '/api/kernels/k/channels?session_id=1'), '/api/kernels/k/channels?session_id=1');

  proc.child.kill('SIGTERM');
  assert.equal((await proc.exit()).code, 0);
  assert.equal(proc.logs.withMsg(CLI_LOG.stopped).length, 1);
  assert.equal(existsSync(s.sock), false, 'the socket file is removed');
});

test('--socket-mode: 0600 keeps other users out (EACCES), 0666 lets them in; root-owned socket, a nobody client', async (t) => {
  const s = await setup(t);
  const closed = spawnOnSocket(t, s, ['--socket-mode', '0600']);
  await closed.started();
  assert.equal(modeOf(s.sock).toString(8), '600');
  assert.equal(await getAs('nobody', s.sock), 'EACCES');

  const openSock = join(s.dir, 'open.sock');
  const open = spawnOnSocket(t, { ...s, sock: openSock }, ['--socket-mode', '666']);
  await open.started();
  assert.equal(modeOf(openSock).toString(8), '666');
  assert.equal(await getAs('nobody', openSock), '404', 'nobody reaches the proxy (and has no session)');
});

test('a stale socket left by a crash is replaced, and said so once', async (t) => {
  const s = await setup(t);
  await leaveStaleSocket(s.sock);
  const proc = spawnOnSocket(t, s);
  await proc.started();
  const replaced = proc.logs.withMsg(DAEMON_LOG.staleSocketReplaced);
  assert.equal(replaced.length, 1);
  assert.equal(replaced[0].level, 'info');
  assert.equal(replaced[0].socket, s.sock);
  assert.equal((await request(0, { socketPath: s.sock, headers: cookie('alice') })).status, 200);
});

test('a socket another proxy listens on: exit 2 with one fatal line, and that proxy keeps serving on it', async (t) => {
  const s = await setup(t);
  const first = spawnOnSocket(t, s);
  await first.started();
  const second = spawnOnSocket(t, s);
  assert.equal((await second.exit()).code, 2);
  const fatal = second.logs.lines.filter((l) => l.level === 'fatal');
  assert.equal(fatal.length, 1);
  assert.equal(fatal[0].msg, `cannot listen on ${s.sock}: another process is listening on it (is another proxy running? stop it or choose another --socket path)`);
  assert.equal(second.logs.withMsg(DAEMON_LOG.listening).length, 0);
  assert.ok(lstatSync(s.sock).isSocket(), 'the live socket is still there');
  assert.equal((await request(0, { socketPath: s.sock, headers: cookie('alice') })).status, 200);
});

test('a regular file or a directory at the path: exit 2, never removed', async (t) => {
  const s = await setup(t);
  writeFileSync(s.sock, 'precious');
  const onFile = spawnOnSocket(t, s);
  assert.equal((await onFile.exit()).code, 2);
  assert.match(onFile.logs.lines.find((l) => l.level === 'fatal')?.msg ?? '', /: it exists and is not a socket \(the proxy never removes it/);
  assert.equal(readFileSync(s.sock, 'utf8'), 'precious');

  const dirPath = join(s.dir, 'a-dir');
  mkdirSync(dirPath);
  const onDir = spawnOnSocket(t, { ...s, sock: dirPath });
  assert.equal((await onDir.exit()).code, 2);
  assert.ok(statSync(dirPath).isDirectory());
});

test('a socket in a directory that does not exist: exit 1, one line saying so', async (t) => {
  const s = await setup(t);
  const missing = join(s.dir, 'no-such-dir', 'gie.sock');
  const proc = spawnOnSocket(t, { ...s, sock: missing });
  assert.equal((await proc.exit()).code, 1);
  const fatal = proc.logs.lines.filter((l) => l.level === 'fatal');
  assert.equal(fatal.length, 1);
  assert.equal(fatal[0].msg, `cannot listen on ${missing}: the directory ${join(s.dir, 'no-such-dir')} does not exist (create it; under systemd, RuntimeDirectory= does)`);
});

test('a socket path too long for sun_path: exit 2 naming the flag, before anything starts', async (t) => {
  const s = await setup(t);
  const long = join(s.dir, 'x'.repeat(120));
  const proc = spawnOnSocket(t, { ...s, sock: long });
  assert.equal((await proc.exit()).code, 2);
  assert.match(proc.stderr, /^error: option '--socket <path>' argument '.+' is invalid\. is too long for a unix socket \(at most 107 bytes\)/);
  assert.equal(existsSync(long.slice(0, 107)), false, 'nothing bound under the cut-short name');
});

test('--xfwd over the socket: X-Forwarded-For as the front server sent it (never "undefined"), -Proto/-Port/-Host added', async (t) => {
  const s = await setup(t);
  const proc = spawnOnSocket(t, s, ['--xfwd']);
  await proc.started();
  const headersSeen = async (headers: Record<string, string>): Promise<Seen['headers']> => {
    const r = await request(0, { socketPath: s.sock, headers: { ...cookie('alice'), ...headers } });
    return (JSON.parse(r.body) as Seen).headers;
  };
  const fromNginx = await headersSeen({ host: 'galaxy.example.org', 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' });
  assert.equal(fromNginx['x-forwarded-for'], '203.0.113.7');
  assert.equal(fromNginx['x-forwarded-proto'], 'https,http');
  assert.equal(fromNginx['x-forwarded-port'], '80');
  assert.equal(fromNginx['x-forwarded-host'], 'galaxy.example.org');
  const bare = await headersSeen({ host: 'h.example:8800' });
  assert.equal(bare['x-forwarded-for'], undefined);
  assert.deepEqual([bare['x-forwarded-proto'], bare['x-forwarded-port'], bare['x-forwarded-host']], ['http', '8800', 'h.example:8800']);

  // The WebSocket upgrade gets the same treatment.
  const upgrade = new Promise<Seen['headers']>((resolve) => s.upstream.wss.once('connection', (_ws, req) => resolve(req.headers)));
  await webSocketVia(s.sock, '/ws');
  const wsHeaders = await upgrade;
  assert.equal(wsHeaders['x-forwarded-for'], undefined);
  assert.equal(wsHeaders['x-forwarded-proto'], 'ws');
});

test('the programmatic API: socketPath and socketMode; Daemon.address is the path; close() removes the file', async (t) => {
  const s = await setup(t);
  const proxy = await startInProcessProxy(t, { sessions: { alice: s.upstream.port }, socketPath: s.sock, socketMode: 0o640 });
  assert.equal(proxy.daemon.address, s.sock);
  assert.equal(modeOf(s.sock).toString(8), '640');
  assert.equal(proxy.logs.withMsg(DAEMON_LOG.listening)[0]?.socket, s.sock);
  assert.equal((await request(0, { socketPath: s.sock, headers: cookie('alice') })).status, 200);
  await proxy.close();
  assert.equal(existsSync(s.sock), false);
});
