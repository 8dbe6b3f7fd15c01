/**
 * The README's nginx locations in front of the proxy: a private nginx (its
 * own prefix, config, pid file and logs in a temp dir) on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cookie, request } from './helpers/client.js';
import { KERNEL_CHANNEL, SESSION, assertRoutesThrough, proxyForFrontServer, webSocketThrough } from './helpers/front-server.js';
import { startNginx } from './helpers/nginx.js';
import { freePort } from './helpers/ports.js';
import { adapt, readmeBlock } from './helpers/readme.js';
import type { Seen } from './helpers/upstream.js';

test('nginx with the README locations passes HTTP and Jupyter kernel WebSockets, prefix and query intact', { timeout: 60_000 }, async (t) => {
  const { dir, proxy } = await proxyForFrontServer(t);
  const port = await freePort();
  const guidePort = await freePort();
  const locations = adapt(readmeBlock('nginx', 'location /galaxy/gie_proxy {'), 'http://localhost:8800/', `http://127.0.0.1:${proxy.port}/`);
  // The deployment guide's kernel route, for comparison: no `$is_args$args`.
  const guide = adapt(locations, '$rest$is_args$args;', '$rest;');
  const servers = `  server {
    listen 127.0.0.1:${port};
${locations}
  }
  server {
    listen 127.0.0.1:${guidePort};
${guide}
  }`;
  if (!(await startNginx(t, dir, servers, port))) return;

  await assertRoutesThrough(port);
  const post = await request(port, {
    method: 'POST',
    path: '/galaxy/gie_proxy/jupyter/ipython/api/contents',
    headers: { ...cookie(SESSION), 'content-type': 'application/json' },
    body: '{"type":"notebook"}',
  });
  assert.equal((JSON.parse(post.body) as Seen).bodyBytes, 19, 'the request body reaches the container');
  // The guide's version of the kernel location loses the query string.
  assert.equal(await webSocketThrough(guidePort, KERNEL_CHANNEL), KERNEL_CHANNEL.split('?')[0]);
});
