/**
 * The README's Apache routes in front of the proxy: a private httpd (its own
 * server root, config, pid file and logs in a temp dir) on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
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

/** Where Debian keeps Apache's loadable modules. */
const MODULES = '/usr/lib/apache2/modules';

const ROUTES = {
  'with mod_proxy_wstunnel (the deployment guide)': 'ProxyPass        /galaxy/gie_proxy/jupyter/ipython/api/kernels ws://',
  'with upgrade=websocket (Apache 2.4.47+)': 'ProxyPass        /galaxy/gie_proxy http://localhost:8800/galaxy/gie_proxy upgrade=websocket',
};

for (const [name, start] of Object.entries(ROUTES)) {
  test(`Apache ${name} passes HTTP and Jupyter kernel WebSockets with the prefix and the query`, { timeout: 60_000 }, async (t) => {
    const apache = requireTool(t, 'apache2', 'apt-get install apache2');
    if (apache === undefined) return;
    const tmp = tempDir('gie-apache-');
    const upstream = await startUpstream('jupyter');
    const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
    map.addSession('gx-session', '127.0.0.1', upstream.port);
    const proxy = await startTestProxy({ sessionsPath: map.path });
    const port = await freePort();
    const routes = adapt(readmeBlock('apache', start), 'localhost:8800', `127.0.0.1:${proxy.port}`);
    const modules = ['mpm_prefork', 'authz_core', 'proxy', 'proxy_http', 'proxy_wstunnel'].filter((m) => existsSync(join(MODULES, `mod_${m}.so`)));
    writeFileSync(
      join(tmp.dir, 'httpd.conf'),
      [
        `ServerRoot ${tmp.dir}`,
        `DefaultRuntimeDir ${tmp.dir}`,
        `PidFile ${join(tmp.dir, 'httpd.pid')}`,
        `ErrorLog ${join(tmp.dir, 'error.log')}`,
        'LogLevel warn',
        'ServerName localhost',
        `Listen 127.0.0.1:${port}`,
        ...modules.map((m) => `LoadModule ${m}_module ${join(MODULES, `mod_${m}.so`)}`),
        routes,
      ].join('\n'),
    );
    // -X: one process in the foreground, stopped by SIGTERM (with the prefork MPM;
    // the threaded ones take their whole shutdown timeout in this mode).
    const server = spawn(apache, ['-X', '-d', tmp.dir, '-f', join(tmp.dir, 'httpd.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    server.stderr.on('data', (c: Buffer) => (output += c.toString()));
    let ws: WebSocket | undefined;
    t.after(async () => {
      // An open tunnel would hold Apache's stop for its whole timeout.
      ws?.terminate();
      await stopChild(server);
      await proxy.close();
      await upstream.close();
      tmp.remove();
    });
    await waitUntil('Apache to accept connections', async () => {
      if (server.exitCode !== null) throw new Error(`apache2 exited ${server.exitCode}: ${output}`);
      const socket = net.connect(port, '127.0.0.1');
      try {
        await once(socket, 'connect');
        return true;
      } finally {
        socket.destroy();
      }
    }, { timeoutMs: 10_000, everyMs: 50 });

    const get = await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/tree?token=t1', headers: cookie('gx-session') });
    assert.equal(get.status, 200, get.body);
    assert.equal((JSON.parse(get.body) as Seen).url, '/galaxy/gie_proxy/jupyter/ipython/tree?token=t1');
    // Jupyter's REST calls under .../api/kernels are plain HTTP, on the WebSocket route too.
    const rest = await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/api/kernels?x=1', headers: cookie('gx-session') });
    assert.equal(rest.status, 200, rest.body);
    assert.equal((JSON.parse(rest.body) as Seen).url, '/galaxy/gie_proxy/jupyter/ipython/api/kernels?x=1');
    assert.equal((await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/tree' })).status, 404);

    const kernel = '/galaxy/gie_proxy/jupyter/ipython/api/kernels/0b4f/channels?session_id=s1';
    ws = new WebSocket(`ws://127.0.0.1:${port}${kernel}`, { headers: cookie('gx-session'), handshakeTimeout: 5000 });
    const [hello] = (await once(ws, 'message')) as [Buffer];
    assert.equal((JSON.parse(hello.toString()) as { url: string }).url, kernel);
    ws.send('ping');
    const [echo] = (await once(ws, 'message')) as [Buffer];
    assert.equal(echo.toString(), 'ping');
  });
}
