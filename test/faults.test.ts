import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { ANSWERS } from '../src/http/answers.js';
import { cookie, request } from './helpers/client.js';
import { ContainerProcess } from './helpers/container-process.js';
import { openFds, waitForFds } from './helpers/fds.js';
import { GalaxySqliteWriter, tempDir } from './helpers/galaxy-map.js';
import { alive, startSpawnedProxy, type SpawnedProxy } from './helpers/spawned-proxy.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

// Each fault runs against the real spawned lib/main.js, so that its open file
// descriptors can be counted in /proc, and ends with the same checks: the
// process is alive, still routes a mapped request, logged no error-level line,
// and holds no more descriptors than right after start-up.

interface Setup {
  proxy: SpawnedProxy;
  map: GalaxySqliteWriter;
  good: Upstream;
  /** Descriptors right after start-up. */
  baseFds: number;
}

/** A spawned proxy whose map routes `good` to a healthy container plus the given sessions. */
async function setup(t: import('node:test').TestContext, sessions: Record<string, number> = {}, args: string[] = []): Promise<Setup> {
  const tmp = tempDir();
  const good = await startUpstream('good');
  t.after(async () => {
    await good.close();
    tmp.remove();
  });
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession('good', '127.0.0.1', good.port);
  for (const [key, port] of Object.entries(sessions)) map.addSession(key, '127.0.0.1', port);
  const proxy = await startSpawnedProxy(t, map.path, args);
  return { proxy, map, good, baseFds: openFds(proxy.pid) };
}

/** The closing checks every fault must pass. */
async function assertRecovered({ proxy, good, baseFds }: Setup): Promise<void> {
  assert.ok(alive(proxy), 'the proxy process exited');
  const r = await request(proxy.port, { headers: cookie('good') });
  assert.equal(r.status, 200, 'a mapped request is still routed');
  // The keep-alive pool to `good` is not a leak: let the container close it.
  good.server.closeIdleConnections();
  await waitForFds(proxy.pid, baseFds);
  const bad = proxy.proc.logs.lines.filter((l) => l.level === 'error' || l.level === 'fatal' || l.level === 'raw');
  assert.deepEqual(bad, [], 'no error-level or non-JSON output');
  assert.equal(proxy.proc.stderr, '');
}

/** Streams a large upload until the proxy answers; resolves with the status and body. */
function uploadUntilAnswered(port: number, key: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 2);
    let answered = false;
    const req = http.request(
      { host: '127.0.0.1', port, method: 'PUT', path, agent: false, headers: { ...cookie(key), 'content-length': String(1024 * 1024 * 1024) } },
      (res) => {
        answered = true;
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8')));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const timer = setTimeout(() => req.destroy(new Error('no answer to the upload')), 10_000);
    req.on('close', () => clearTimeout(timer));
    const pump = (): void => {
      while (!answered && !req.destroyed) {
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
    };
    pump();
  });
}

test('fault: a container killed mid-upload → 502 and a warning; the proxy lives on, nothing leaked', async (t) => {
  const container = await ContainerProcess.start(t);
  const s = await setup(t, { alice: container.port });
  const from = s.proxy.proc.logs.lines.length;
  const reply = uploadUntilAnswered(s.proxy.port, 'alice', '/upload');
  await container.waitFor('upload-started');
  await container.kill();
  const r = await reply;
  assert.equal(r.status, 502);
  assert.equal(r.body, ANSWERS['container-unreachable'].body);
  const warn = await s.proxy.proc.logs.waitFor((l) => l.msg === 'container unreachable; answered with an error status', 5000, from);
  assert.match(String(warn.code), /^(ECONNRESET|EPIPE)$/);
  assert.equal(warn.status, 502);
  await assertRecovered(s);
});

test('fault: a container killed mid-download → the response is cut and a warning logged; nothing leaked', async (t) => {
  const container = await ContainerProcess.start(t);
  const s = await setup(t, { alice: container.port });
  const from = s.proxy.proc.logs.lines.length;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: s.proxy.port, path: '/download', headers: cookie('alice'), agent: false }, resolve).on('error', reject);
  });
  assert.equal(res.statusCode, 200);
  let received = 0;
  res.on('data', (c: Buffer) => (received += c.length));
  await container.waitFor('download-started');
  const ended = new Promise<string>((resolve) => {
    res.once('end', () => resolve('end'));
    res.once('error', (err) => resolve(`error: ${err.message}`));
  });
  await container.kill();
  const how = await Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('still open'), 5000))]);
  assert.match(how, /^error/, `the client saw "${how}" instead of a cut response`);
  assert.ok(received > 0);
  const warn = await s.proxy.proc.logs.waitFor((l) => l.msg === 'container closed the connection mid-response; the response was cut', 5000, from);
  assert.equal(warn.target, `127.0.0.1:${container.port}`);
  await assertRecovered(s);
});

test('fault: a container killed mid-WebSocket → the client WebSocket closes, a websocket closed line; nothing leaked', async (t) => {
  const container = await ContainerProcess.start(t);
  const s = await setup(t, { alice: container.port }, ['--verbose']);
  const ws = new WebSocket(`ws://127.0.0.1:${s.proxy.port}/api/kernels/k1/channels`, { headers: cookie('alice') });
  t.after(() => ws.terminate());
  ws.on('error', () => {});
  await once(ws, 'open');
  const closed = once(ws, 'close');
  ws.send('hello');
  await container.waitFor('ws-message');
  await container.kill();
  const [code] = (await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('client WebSocket left open')), 5000))])) as [number];
  assert.equal(code, 1006, 'abnormal closure: the tunnel was cut');
  const line = await s.proxy.proc.logs.waitFor((l) => l.msg === 'websocket closed');
  assert.equal(line.closedBy, 'container');
  assert.equal(line.path, '/api/kernels/k1/channels');
  await assertRecovered(s);
});

/** Breaks the map with `breakIt`, checks the last good map keeps routing, then lets Galaxy write it anew. */
async function mapFault(t: import('node:test').TestContext, reason: string, breakIt: (path: string) => void): Promise<void> {
  const s = await setup(t);
  const { logs } = s.proxy.proc;
  const warned = logs.next('session map unreadable; keeping the last good map', 5000, (l) => l.reason === reason);
  breakIt(s.map.path);
  const warn = await warned;
  assert.equal(warn.sessions, 1, 'the last good map stays in use');
  assert.equal((await request(s.proxy.port, { headers: cookie('good') })).status, 200);
  // Galaxy writes the map again: the new session is routed.
  const recovered = logs.next('session map readable again', 5000);
  rmSync(s.map.path, { recursive: true, force: true });
  s.map.addSession('good', '127.0.0.1', s.good.port);
  s.map.addSession('carol', '127.0.0.1', s.good.port);
  await recovered;
  await logs.waitFor((l) => l.msg === 'session map reloaded' && l.sessions === 2, 5000);
  assert.equal((await request(s.proxy.port, { headers: cookie('carol') })).status, 200);
  await assertRecovered(s);
}

test('fault: the map deleted → warning (missing), the last good map keeps routing', (t) => mapFault(t, 'missing', (path) => unlinkSync(path)));

test('fault: the map replaced by garbage → warning (corrupt), the last good map keeps routing', (t) =>
  mapFault(t, 'corrupt', (path) => writeFileSync(path, Buffer.alloc(8192, 'not a database '))));

// chmod 000 does not stop root (the CI user) from reading, so "unreadable" is
// made with a directory where the file was: opening it fails the same way
// (SQLITE_CANTOPEN on an existing path) as a permission error does.
test('fault: the map made unreadable (a directory in its place) → warning (unreadable), the last good map keeps routing', (t) =>
  mapFault(t, 'unreadable', (path) => {
    unlinkSync(path);
    mkdirSync(path);
  }));

test('fault: a writer holds an exclusive lock on the map for 5 s → warning (busy), requests still answered at once', async (t) => {
  const s = await setup(t);
  const { logs } = s.proxy.proc;
  const db = new Database(s.map.path);
  t.after(() => db.close());
  const warned = logs.next('session map unreadable; keeping the last good map', 5000, (l) => l.reason === 'busy');
  db.exec('BEGIN EXCLUSIVE');
  db.prepare('INSERT INTO gxproxy2 (key, host, port, container_ids, container_interface) VALUES (?,?,?,?,?)').run('carol', '127.0.0.1', s.good.port, '[]', null);
  const lockedAt = Date.now();
  // A poll tick (1 s) or the journal's file event makes the proxy try to read.
  await warned;
  const latencies: number[] = [];
  while (Date.now() - lockedAt < 5000) {
    const started = performance.now();
    const r = await request(s.proxy.port, { headers: cookie('good') });
    latencies.push(performance.now() - started);
    assert.equal(r.status, 200);
    assert.equal((await request(s.proxy.port, { headers: cookie('carol') })).status, 404, 'uncommitted rows are not routed');
  }
  const reloaded = logs.next('session map reloaded', 5000, (l) => l.sessions === 2);
  db.exec('COMMIT');
  await reloaded;
  await logs.waitFor((l) => l.msg === 'session map readable again', 5000);
  assert.equal((await request(s.proxy.port, { headers: cookie('carol') })).status, 200);
  latencies.sort((a, b) => a - b);
  const max = latencies[latencies.length - 1] ?? 0;
  t.diagnostic(`${latencies.length} requests during the lock; median ${latencies[latencies.length >> 1]?.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
  // Each read attempt waits at most 50 ms for the lock: requests are delayed
  // by that at worst, never by the 5 s the lock is held.
  assert.ok(max < 1000, `a request waited ${max.toFixed(0)} ms while the map was locked`);
  await assertRecovered(s);
});

test('fault: a container that accepts and never answers → 504 after --proxy-timeout, and its connection is closed', async (t) => {
  const held = new Set<net.Socket>();
  const mute = net.createServer((socket) => {
    held.add(socket);
    socket.resume(); // reads (and so sees the proxy hang up), never answers
    socket.on('error', () => {});
    socket.once('close', () => held.delete(socket));
  });
  mute.listen(0, '127.0.0.1');
  await once(mute, 'listening');
  t.after(() => {
    for (const socket of held) socket.destroy();
    mute.close();
  });
  const mutePort = (mute.address() as net.AddressInfo).port;
  const s = await setup(t, { alice: mutePort }, ['--proxy-timeout', '500']);
  const from = s.proxy.proc.logs.lines.length;
  const started = Date.now();
  const r = await request(s.proxy.port, { headers: cookie('alice'), timeoutMs: 5000 });
  const ms = Date.now() - started;
  assert.equal(r.status, 504);
  assert.equal(r.body, ANSWERS['container-timeout'].body);
  assert.ok(ms >= 450 && ms < 3000, `answered after ${ms} ms`);
  const warn = await s.proxy.proc.logs.waitFor((l) => l.msg === 'container did not answer in time; answered with an error status', 3000, from);
  assert.equal(warn.code, 'ERR_GIE_PROXY_TIMEOUT');
  assert.equal(warn.status, 504);
  // A WebSocket upgrade to it gets the same answer on the raw socket.
  const ws = new WebSocket(`ws://127.0.0.1:${s.proxy.port}/ws`, { headers: cookie('alice') });
  ws.on('error', () => {});
  const [, wsRes] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
  assert.equal(wsRes.statusCode, 504);
  ws.terminate();
  // The proxy let go of the container's connections.
  await Promise.race([
    Promise.all([...held].map((socket) => once(socket, 'close'))),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`the proxy kept ${held.size} silent container connections open`)), 5000)),
  ]);
  await assertRecovered(s);
});

test('fault: 1,000 connections opened and dropped → the proxy lives on, nothing leaked', async (t) => {
  const s = await setup(t, {}, ['--headers-timeout', '2000']);
  const sockets: net.Socket[] = [];
  const BATCH = 100;
  for (let i = 0; i < 1000; i += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, j) => {
      const socket = net.connect(s.proxy.port, '127.0.0.1');
      socket.on('error', () => {});
      sockets.push(socket);
      return once(socket, 'connect').then(() => {
        // A third say nothing, a third stop mid-headers, a third send a
        // whole mapped request and never read the answer.
        const kind = (i + j) % 3;
        if (kind === 1) socket.write('GET /half HTTP/1.1\r\nHost: x\r\nCookie: galax');
        if (kind === 2) socket.write('GET /whole HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=good\r\n\r\n');
      });
    });
    await Promise.all(batch);
  }
  assert.ok(alive(s.proxy));
  // Drop them all, half with a reset.
  sockets.forEach((socket, i) => (i % 2 === 0 ? socket.resetAndDestroy() : socket.destroy()));
  await assertRecovered(s);
});
