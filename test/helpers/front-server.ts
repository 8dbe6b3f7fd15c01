import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { cookie, request } from './client.js';
import { startInProcessProxy, type InProcessProxy } from './in-process-proxy.js';
import { stopChild } from './processes.js';
import { upstreamFor, type Seen, type Upstream } from './upstream.js';
import { adapt, readmeBlock } from './readme.js';
import { waitUntil } from './wait.js';

/** The session the front-server tests route. */
export const SESSION = 'gx-session';
/** A Jupyter kernel channel, as Galaxy's Jupyter page opens it behind `/galaxy/gie_proxy`. */
export const KERNEL_CHANNEL = '/galaxy/gie_proxy/jupyter/ipython/api/kernels/0b4f/channels?session_id=s1';

/** An in-process proxy with one container mapped to SESSION, all closed in t.after. */
export async function proxyForFrontServer(t: TestContext): Promise<{ dir: string; upstream: Upstream; proxy: InProcessProxy }> {
  const upstream = await upstreamFor(t, 'jupyter');
  const proxy = await startInProcessProxy(t, { sessions: { [SESSION]: upstream.port } });
  return { dir: proxy.dir, upstream, proxy };
}

/**
 * Starts a web server in the foreground and resolves once it accepts
 * connections on 127.0.0.1:`port`; it is stopped (SIGTERM, then SIGKILL) in t.after.
 */
export async function startFrontServer(t: TestContext, command: string, args: string[], port: number): Promise<ChildProcess> {
  const server = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  server.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  server.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  t.after(() => stopChild(server));
  await waitUntil(`${command} to accept connections on ${port}`, async () => {
    if (server.exitCode !== null) throw new Error(`${command} exited ${server.exitCode}: ${output}`);
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    try {
      await once(socket, 'connect');
      return true;
    } finally {
      socket.destroy();
    }
  }, { timeoutMs: 10_000, everyMs: 50 });
  return server;
}

/** The URL the container saw for a WebSocket opened through `port`, after one echoed message. */
export function webSocketThrough(port: number, path: string): Promise<string> {
  return webSocketEcho(`ws://127.0.0.1:${port}${path}`, cookie(SESSION));
}

/** The URL the container saw for a WebSocket opened at `url` (`ws://…`, `ws+unix://…`) with `headers`, after one echoed message. */
export async function webSocketEcho(url: string, headers: Record<string, string>): Promise<string> {
  const ws = new WebSocket(url, { headers, handshakeTimeout: 5000 });
  try {
    const [hello] = (await once(ws, 'message')) as [Buffer];
    ws.send('ping');
    const [echo] = (await once(ws, 'message')) as [Buffer];
    assert.equal(echo.toString(), 'ping');
    return (JSON.parse(hello.toString()) as { url: string }).url;
  } finally {
    // An open tunnel would hold some servers' stop for their whole timeout.
    ws.terminate();
  }
}

/**
 * What every front-server setup must do: the `/galaxy/gie_proxy` prefix and
 * the query reach the container unchanged, the proxy's own answers come back
 * (404 without a session), and a Jupyter kernel WebSocket works, query included.
 */
export async function assertRoutesThrough(port: number): Promise<void> {
  const get = await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/tree?token=t1', headers: cookie(SESSION) });
  assert.equal(get.status, 200, get.body);
  assert.equal((JSON.parse(get.body) as Seen).url, '/galaxy/gie_proxy/jupyter/ipython/tree?token=t1');
  assert.equal((await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/tree' })).status, 404);
  assert.equal(await webSocketThrough(port, KERNEL_CHANNEL), KERNEL_CHANNEL);
}

/**
 * The README's nginx locations, pointed at a proxy on 127.0.0.1:`proxyPort`
 * instead of the README's localhost:8800.
 */
export function readmeNginxLocations(proxyPort: number): string {
  return adapt(readmeBlock('nginx', 'location /galaxy/gie_proxy {'), 'http://localhost:8800/', `http://127.0.0.1:${proxyPort}/`);
}
