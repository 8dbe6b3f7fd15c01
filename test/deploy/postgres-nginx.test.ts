import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import { request } from '../helpers/client.js';
import { startFrontServer } from '../helpers/front-server.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { freePort } from '../helpers/ports.js';
import { entryPointHost, requestEntryPoint, startPgProxy, type PgProxy } from '../helpers/postgres-proxy.js';
import { PgCluster } from '../helpers/postgres.js';
import { parseMetrics } from '../helpers/prometheus.js';
import { alive } from '../helpers/spawned-proxy.js';
import { requireTool } from '../helpers/tools.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * Several proxies on one PostgreSQL map behind nginx (an `upstream` with
 * both, the README's layout): a row Galaxy writes once is routed by both;
 * one proxy killed under load → nginx fails over, only requests in flight on
 * the killed one may fail, and WebSockets through the survivor carry on.
 */

const cluster = new PgCluster();
after(() => cluster.destroy());

async function webSocketsOpen(proxy: PgProxy): Promise<number> {
  const reply = await request(proxy.metricsPort, { path: '/metrics' });
  return parseMetrics(reply.body).get('gie_proxy_websockets_open') ?? NaN;
}

test('two proxies behind an nginx upstream share one PostgreSQL map and survive losing one', { timeout: 120_000 }, async (t) => {
  const nginx = requireTool(t, 'nginx', 'apt-get install -y nginx-light');
  if (nginx === undefined) return;
  if (!(await cluster.ready(t))) return;
  const tmp = tempDir('gie-pg-nginx-');
  t.after(() => tmp.remove());
  const container = await startUpstream('jupyter');
  t.after(() => container.close());
  const db = await cluster.createDatabase();
  const writer = new GalaxyPgWriter(cluster.config(db));
  t.after(() => writer.close());
  await writer.createTable();
  await writer.installReadmeTrigger();

  const a = await startPgProxy(t, cluster.url(db));
  const b = await startPgProxy(t, cluster.url(db));
  const port = await freePort();
  const conf = join(tmp.dir, 'nginx.conf');
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;
worker_processes 1;
pid ${join(tmp.dir, 'nginx.pid')};
error_log ${join(tmp.dir, 'error.log')} info;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${join(tmp.dir, 'body')};
  proxy_temp_path ${join(tmp.dir, 'proxy')};
  fastcgi_temp_path ${join(tmp.dir, 'fastcgi')};
  uwsgi_temp_path ${join(tmp.dir, 'uwsgi')};
  scgi_temp_path ${join(tmp.dir, 'scgi')};
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream gxit_proxies {
    server 127.0.0.1:${a.port} max_fails=1 fail_timeout=10s;
    server 127.0.0.1:${b.port} max_fails=1 fail_timeout=10s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://gxit_proxies;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_next_upstream error timeout http_502;
      proxy_connect_timeout 2s;
      proxy_read_timeout 1h;
    }
  }
}
`,
  );
  await startFrontServer(t, nginx, ['-p', tmp.dir, '-c', conf, '-e', join(tmp.dir, 'error.log')], port);

  // A row Galaxy writes once is routed by both proxies.
  const written = Date.now();
  await writer.save({ key: 'shared1', token: 'tok', host: '127.0.0.1', port: container.port });
  const routedBy = await Promise.all(
    [a, b].map(async (proxy) => {
      await waitUntil('routed by this proxy', async () => (await requestEntryPoint(proxy.port, 'shared1', 'tok')).status === 200 || undefined, { timeoutMs: 10_000, everyMs: 2 });
      return Date.now() - written;
    }),
  );
  t.diagnostic(`one Galaxy save routed by proxy A after ${routedBy[0]} ms, by proxy B after ${routedBy[1]} ms`);

  // WebSockets through nginx, spread over both proxies.
  const sockets: WebSocket[] = [];
  for (let i = 0; i < 8; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ipython/api/kernels/k${i}/channels`, { headers: { host: entryPointHost('shared1', 'tok') }, handshakeTimeout: 5000 });
    ws.on('error', () => {});
    await once(ws, 'message'); // the container's hello
    sockets.push(ws);
  }
  t.after(() => sockets.forEach((ws) => ws.terminate()));
  const onA = await webSocketsOpen(a);
  const onB = await webSocketsOpen(b);
  assert.equal(onA + onB, 8);
  assert.ok(onA > 0 && onB > 0, `nginx spread the WebSockets (${onA} on A, ${onB} on B)`);

  // Load through nginx; kill proxy A in the middle.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());
  const results: { started: number; status: number }[] = [];
  let killedAt = Infinity;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const started = Date.now();
      const status = await request(port, { path: '/ipython/tree', headers: { host: entryPointHost('shared1', 'tok') }, agent, timeoutMs: 10_000 }).then(
        (r) => r.status,
        () => 0,
      );
      results.push({ started, status });
    }
  };
  const workers = Array.from({ length: 8 }, worker);
  await waitUntil('some load before the kill', () => results.length >= 200 || undefined, { timeoutMs: 20_000 });
  killedAt = Date.now();
  a.proc.child.kill('SIGKILL');
  await a.proc.exited;
  const afterKill = results.length;
  await waitUntil('load after the kill', () => results.length >= afterKill + 300 || undefined, { timeoutMs: 30_000 });
  stop = true;
  await Promise.all(workers);

  const failed = results.filter((r) => r.status !== 200);
  t.diagnostic(`${results.length} requests through nginx, ${failed.length} failed, proxy A killed after ${results.filter((r) => r.started < killedAt).length}`);
  for (const f of failed) assert.ok(f.started < killedAt, `a request started after the kill failed with ${f.status}`);
  assert.ok(failed.length <= 8, `at most the requests in flight failed (${failed.length})`);
  assert.ok(results.filter((r) => r.started > killedAt).every((r) => r.status === 200));

  // The WebSockets through B are untouched: still open, still echoing.
  await waitUntil('the WebSockets through A closed', () => sockets.filter((ws) => ws.readyState !== WebSocket.OPEN).length === onA || undefined, { timeoutMs: 10_000 });
  const survivors = sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
  assert.equal(survivors.length, onB);
  for (const ws of survivors) {
    ws.send('still there?');
    const [echo] = (await once(ws, 'message')) as [Buffer];
    assert.equal(echo.toString(), 'still there?');
  }
  assert.equal(await webSocketsOpen(b), onB);
  assert.ok(alive(b));

  // And B still follows the map on its own.
  await writer.save({ key: 'shared2', token: 'tok', host: '127.0.0.1', port: container.port });
  await waitUntil('routed through nginx by B', async () => (await requestEntryPoint(port, 'shared2', 'tok')).status === 200 || undefined, { timeoutMs: 10_000 });
});
