/**
 * The README's Apache routes in front of the proxy: a private httpd (its own
 * server root, config, pid file and logs in a temp dir) on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cookie, request } from '../helpers/client.js';
import { SESSION, assertRoutesThrough, proxyForFrontServer, startFrontServer } from '../helpers/front-server.js';
import { freePort } from '../helpers/ports.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { requireTool } from '../helpers/tools.js';
import type { Seen } from '../helpers/upstream.js';

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
    const { dir, proxy } = await proxyForFrontServer(t);
    const port = await freePort();
    const routes = adapt(readmeBlock('apache', start), 'localhost:8800', `127.0.0.1:${proxy.port}`);
    // prefork: with -X (one process in the foreground) the threaded MPMs take
    // their whole shutdown timeout to stop.
    const modules = ['mpm_prefork', 'authz_core', 'proxy', 'proxy_http', 'proxy_wstunnel'].filter((m) => existsSync(join(MODULES, `mod_${m}.so`)));
    writeFileSync(
      join(dir, 'httpd.conf'),
      [
        `ServerRoot ${dir}`,
        `DefaultRuntimeDir ${dir}`,
        `PidFile ${join(dir, 'httpd.pid')}`,
        `ErrorLog ${join(dir, 'error.log')}`,
        'LogLevel warn',
        'ServerName localhost',
        `Listen 127.0.0.1:${port}`,
        ...modules.map((m) => `LoadModule ${m}_module ${join(MODULES, `mod_${m}.so`)}`),
        routes,
      ].join('\n'),
    );
    await startFrontServer(t, apache, ['-X', '-d', dir, '-f', join(dir, 'httpd.conf')], port);

    await assertRoutesThrough(port);
    // Jupyter's REST calls under .../api/kernels are plain HTTP, on the WebSocket route too.
    const rest = await request(port, { path: '/galaxy/gie_proxy/jupyter/ipython/api/kernels?x=1', headers: cookie(SESSION) });
    assert.equal(rest.status, 200, rest.body);
    assert.equal((JSON.parse(rest.body) as Seen).url, '/galaxy/gie_proxy/jupyter/ipython/api/kernels?x=1');
  });
}
