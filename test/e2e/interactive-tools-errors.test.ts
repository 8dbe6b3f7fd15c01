import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { rawExchange, request } from '../helpers/client.js';
import { spawnProxy } from '../helpers/child.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { upstreamFor } from '../helpers/fixture.js';
import { IT_PREFIX as PREFIX, saveAndWait, startItProxy } from '../helpers/it-proxy.js';
import { freePort } from '../helpers/ports.js';

// INTERACTIVE-TOOLS.md §6–7: every request gx-it-proxy answers badly (a trip
// to localhost:80, a hang, a dead process) gets a fast, real HTTP answer here,
// over plain HTTP and on the upgrade socket, and the process lives on.

const UPGRADE_HEADERS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

function upgrade(path: string, host: string | undefined): string {
  return `GET ${path} HTTP/1.1\r\n${host === undefined ? '' : `Host: ${host}\r\n`}${UPGRADE_HEADERS}\r\n`;
}

test('unknown key, wrong token, no key, query-broken token: 404 for HTTP and upgrades, nothing proxied anywhere', async (t) => {
  const container = await upstreamFor(t, 'c');
  const proxy = await startItProxy(t);
  await saveAndWait(proxy, [{ key: 'k1', token: 't1', host: '127.0.0.1', port: container.port }]);
  for (const [path, host] of [
    [`${PREFIX}/nokey/t1/`, 'x'],
    [`${PREFIX}/k1/wrong/`, 'x'],
    [`${PREFIX}/k1/`, 'x'],
    [`${PREFIX}`, 'x'],
    [`${PREFIX}X/k1/t1/`, 'x'],
    ['/', 'nokey-t1.ep.interactivetool.example.org'],
    ['/', 'k1-wrong.ep.interactivetool.example.org'],
    ['/', 'galaxy.example.org'],
  ] as const) {
    const r = await request(proxy.port, { path, headers: { host } });
    assert.equal(r.status, 404, `${host} ${path}`);
    const raw = await rawExchange(proxy.port, upgrade(path, host));
    assert.match(raw.text, /^HTTP\/1\.1 404 /, `upgrade ${host} ${path}`);
  }
  assert.equal(container.seen.length, 0);
  assert.equal(proxy.proc.child.exitCode, null);
});

test('no Host: HTTP/1.0 and upgrades get 400 (path-routed requests need none); the process lives', async (t) => {
  const container = await upstreamFor(t, 'c');
  const proxy = await startItProxy(t);
  await saveAndWait(proxy, [{ key: 'k1', token: 't1', host: '127.0.0.1', port: container.port }]);
  const http10 = await rawExchange(proxy.port, 'GET / HTTP/1.0\r\n\r\n');
  assert.match(http10.text, /^HTTP\/1\.1 400 /);
  const ws = await rawExchange(proxy.port, upgrade('/', undefined));
  assert.match(ws.text, /^HTTP\/1\.1 400 /);
  const pathRouted = await rawExchange(proxy.port, `GET ${PREFIX}/k1/t1/x HTTP/1.0\r\n\r\n`);
  assert.match(pathRouted.text, /^HTTP\/1\.1 200 /);
  assert.equal(proxy.proc.child.exitCode, null);
});

test('a container that is down: 502 over HTTP and as a status line on the upgrade socket', async (t) => {
  const proxy = await startItProxy(t);
  await saveAndWait(proxy, [{ key: 'kdown', token: 'tdown', host: '127.0.0.1', port: await freePort() }]);
  assert.equal((await request(proxy.port, { path: `${PREFIX}/kdown/tdown/` })).status, 502);
  const raw = await rawExchange(proxy.port, upgrade(`${PREFIX}/kdown/tdown/ws`, 'x'));
  assert.match(raw.text, /^HTTP\/1\.1 502 /);
});

test('§7.6 clients that reset while the container is still answering the upgrade do not kill the process', async (t) => {
  // A container that accepts the connection and never finishes the handshake.
  const stalled = net.createServer((socket) => socket.on('error', () => {}));
  stalled.listen(0, '127.0.0.1');
  await once(stalled, 'listening');
  t.after(() => stalled.close());
  const container = await upstreamFor(t, 'c');
  const proxy = await startItProxy(t);
  await saveAndWait(proxy, [
    { key: 'kstall', token: 'tstall', host: '127.0.0.1', port: (stalled.address() as net.AddressInfo).port },
    { key: 'kgood', token: 'tgood', host: '127.0.0.1', port: container.port },
  ]);
  for (let i = 0; i < 5; i++) {
    const socket = net.connect(proxy.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(upgrade(`${PREFIX}/kstall/tstall/ws`, 'x'));
    await once(stalled, 'connection');
    socket.resetAndDestroy();
  }
  const r = await request(proxy.port, { path: `${PREFIX}/kgood/tgood/` });
  assert.equal(r.status, 200);
  assert.equal(proxy.proc.child.exitCode, null);
  assert.ok(!proxy.proc.logs.lines.some((l) => l.level === 'error' || l.level === 'fatal'), 'no error-level line');
});

test('refusals are fast: 200 unknown-key requests on one keep-alive connection are all answered', async (t) => {
  const proxy = await startItProxy(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  for (let i = 0; i < 200; i++) {
    const r = await request(proxy.port, { path: `${PREFIX}/k${i}/t${i}/`, agent, timeoutMs: 2000 });
    assert.equal(r.status, 404);
  }
});

test('§7.7 starting before Galaxy creates the map never kills the process: 8 starts at once (gx-it-proxy 0.2.3 died by the 8th), each waiting for the map', async (t) => {
  const root = tempDir('galaxy-root-');
  t.after(root.remove);
  const starts = await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      const port = await freePort();
      const proc = spawnProxy(
        ['--ip', '127.0.0.1', '--port', String(port), '--sessions', join(root.dir, `missing-dir-${i % 2}`, 'interactivetools_map.sqlite'), '--proxyPathPrefix', PREFIX],
        { bin: 'gx-it-proxy' },
      );
      t.after(() => proc.kill());
      await proc.logs.waitFor((l) => l.msg === 'session map not ready yet; routing nothing until Galaxy writes it', 15_000);
      await proc.started(15_000);
      return { proc, port };
    }),
  );
  for (const { proc, port } of starts) {
    assert.equal((await request(port, { path: `${PREFIX}/k/t/` })).status, 404);
    assert.equal(proc.child.exitCode, null);
  }
});
