/**
 * The README's nginx locations in front of the proxy: a private nginx (its
 * own prefix, config, pid file and logs in a temp dir) on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { GalaxySqliteWriter, tempDir } from './helpers/galaxy-map.js';
import { startTestProxy } from './helpers/daemon.js';
import { cookie, request } from './helpers/client.js';
import { freePort } from './helpers/ports.js';
import { stopChild } from './helpers/processes.js';
import { adapt, readmeBlock } from './helpers/readme.js';
import { requireTool } from './helpers/tools.js';
import { startUpstream, type Seen } from './helpers/upstream.js';
import { waitUntil } from './helpers/wait.js';

/** The first URL a WebSocket upstream saw, through nginx. */
async function webSocketUrl(port: number, path: string, session: string): Promise<string> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: cookie(session), handshakeTimeout: 5000 });
  try {
    const [hello] = (await once(ws, 'message')) as [Buffer];
    return (JSON.parse(hello.toString()) as { url: string }).url;
  } finally {
    ws.terminate();
  }
}

test('nginx with the README locations passes HTTP and Jupyter kernel WebSockets, prefix and query intact', { timeout: 60_000 }, async (t) => {
  const nginx = requireTool(t, 'nginx', 'apt-get install nginx-light');
  if (nginx === undefined) return;
  const tmp = tempDir('gie-nginx-');
  const upstream = await startUpstream('jupyter');
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession('gx-session', '127.0.0.1', upstream.port);
  const proxy = await startTestProxy({ sessionsPath: map.path });
  const port = await freePort();
  const guidePort = await freePort();

  const locations = adapt(readmeBlock('nginx', 'location /galaxy/gie_proxy {'), 'http://localhost:8800/', `http://127.0.0.1:${proxy.port}/`);
  // The deployment guide's kernel route, for comparison: no `$is_args$args`.
  const guide = locations.replace('$rest$is_args$args;', '$rest;');
  assert.notEqual(guide, locations);
  const conf = join(tmp.dir, 'nginx.conf');
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;
worker_processes 1;
pid ${join(tmp.dir, 'nginx.pid')};
error_log ${join(tmp.dir, 'error.log')} info;
events { worker_connections 64; }
http {
  access_log ${join(tmp.dir, 'access.log')};
  client_body_temp_path ${join(tmp.dir, 'body')};
  proxy_temp_path ${join(tmp.dir, 'proxy')};
  fastcgi_temp_path ${join(tmp.dir, 'fastcgi')};
  uwsgi_temp_path ${join(tmp.dir, 'uwsgi')};
  scgi_temp_path ${join(tmp.dir, 'scgi')};
  server {
    listen 127.0.0.1:${port};
${locations}
  }
  server {
    listen 127.0.0.1:${guidePort};
${guide}
  }
}
`,
  );
  const server = spawn(nginx, ['-p', tmp.dir, '-c', conf, '-e', join(tmp.dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  server.stderr.on('data', (c: Buffer) => (output += c.toString()));
  t.after(async () => {
    await stopChild(server);
    await proxy.close();
    await upstream.close();
    tmp.remove();
  });
  await waitUntil('nginx to accept connections', async () => {
    if (server.exitCode !== null) throw new Error(`nginx exited ${server.exitCode}: ${output}`);
    const socket = net.connect(port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      return true;
    } finally {
      socket.destroy();
    }
  }, { timeoutMs: 10_000, everyMs: 50 });

  // HTTP: the /galaxy/gie_proxy prefix reaches the container unchanged, with the query and the body.
  const get = await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/tree?token=t1', headers: cookie('gx-session') });
  assert.equal(get.status, 200, get.body);
  assert.equal((JSON.parse(get.body) as Seen).url, '/galaxy/gie_proxy/jupyter/ipython/tree?token=t1');
  const post = await request(port, {
    method: 'POST',
    path: '/galaxy/gie_proxy/jupyter/ipython/api/contents',
    headers: { ...cookie('gx-session'), 'content-type': 'application/json' },
    body: '{"type":"notebook"}',
  });
  assert.equal((JSON.parse(post.body) as Seen).bodyBytes, 19);
  // No cookie: the proxy's 404 comes back through nginx.
  assert.equal((await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/tree' })).status, 404);

  // Jupyter's kernel channel: a WebSocket, query string included.
  const kernel = '/galaxy/gie_proxy/jupyter/ipython/api/kernels/0b4f/channels?session_id=s1';
  assert.equal(await webSocketUrl(port, kernel, 'gx-session'), kernel);
  // The guide's version of that location loses the query string.
  assert.equal(await webSocketUrl(guidePort, kernel, 'gx-session'), '/galaxy/gie_proxy/jupyter/ipython/api/kernels/0b4f/channels');
});
