import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnProxy, startSpawnedProxy, type ProxyProcess } from '../helpers/spawned-proxy.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { request } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { DAEMON_LOG } from '../../src/daemon.js';
import { METRICS_LOG } from '../../src/admin/metrics.js';

/** A spawned lib/main.js over a fresh map dir, killed and cleaned up in t.after. */
async function spawnWith(t: import('node:test').TestContext, extra: (dir: string) => string[]) {
  const tmp = tempDir();
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession('alice', '127.0.0.1', 9);
  const port = await freePort();
  const child = spawnProxy(['--sessions', map.path, '--ip', '127.0.0.1', '--port', String(port), ...extra(tmp.dir)]);
  t.after(async () => {
    child.kill();
    await child.exited;
    tmp.remove();
  });
  return { tmp, port, child };
}

async function stop(child: ProxyProcess): Promise<number | null> {
  child.child.kill('SIGTERM');
  return (await child.exit()).code;
}

test('--metrics-port starts /health and /metrics on their own listener; --metrics-ip picks its address', async (t) => {
  const metricsPort = await freePort();
  const { child } = await spawnWith(t, () => ['--metrics-port', String(metricsPort), '--metrics-ip', '127.0.0.1']);
  await child.started();
  const line = child.logs.withMsg(METRICS_LOG.listening)[0];
  assert.equal(line?.address, '127.0.0.1');
  assert.equal(line?.port, metricsPort);
  assert.equal((await request(metricsPort, { path: '/health' })).status, 200);
  assert.match((await request(metricsPort, { path: '/metrics' })).body, /^gie_proxy_sessions 1$/m);
  assert.equal(await stop(child), 0);
});

test('--metrics-ip defaults to localhost, and there is no metrics listener unless --metrics-port is given', async (t) => {
  const metricsPort = await freePort();
  const on = await spawnWith(t, () => ['--metrics-port', String(metricsPort)]);
  const off = await spawnWith(t, () => []);
  await on.child.started();
  await off.child.started();
  const address = on.child.logs.withMsg(METRICS_LOG.listening)[0]?.address;
  assert.ok(address === '127.0.0.1' || address === '::1', `listens on loopback, not ${String(address)}`);
  assert.deepEqual(off.child.logs.withMsg(METRICS_LOG.listening), []);
  assert.equal(await stop(on.child), 0);
  assert.equal(await stop(off.child), 0);
});

test('a metrics port that is taken stops the start-up with exit 1 and says why', async (t) => {
  const holder = net.createServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.after(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  const { child } = await spawnWith(t, () => ['--metrics-port', String(taken), '--metrics-ip', '127.0.0.1']);
  const { code } = await child.exit();
  assert.equal(code, 1);
  const fatal = child.logs.lines.find((l) => l.level === 'fatal');
  assert.equal(fatal?.msg, `cannot listen on 127.0.0.1:${taken}: address already in use (is another proxy running?)`);
});

test('a bad --metrics-port is a usage error (exit 2)', async (t) => {
  for (const value of ['0', '70000', 'x']) {
    const { child } = await spawnWith(t, () => ['--metrics-port', value]);
    assert.equal((await child.exit()).code, 2, value);
    assert.match(child.stderr, /error: option '--metrics-port <n>' argument/);
  }
});

test('--pid-file holds the pid while running and is removed on a clean exit', async (t) => {
  const { child, tmp } = await spawnWith(t, (dir) => ['--pid-file', join(dir, 'proxy.pid')]);
  await child.started();
  const pidFile = join(tmp.dir, 'proxy.pid');
  assert.equal(readFileSync(pidFile, 'utf8'), `${child.child.pid}\n`);
  assert.equal(await stop(child), 0);
  assert.equal(existsSync(pidFile), false);
});

test('--pid-file is relative to the working directory and is removed after a forced (second-signal) exit too', async (t) => {
  const { child, tmp } = await spawnWith(t, () => ['--pid-file', 'proxy.pid', '--shutdown-grace', '5000']);
  // spawnWith runs in the test's cwd; start a second child in the temp dir instead.
  child.kill();
  await child.exited;
  const { proc: inDir } = await startSpawnedProxy(t, join(tmp.dir, 'session_map.sqlite'), ['--pid-file', 'proxy.pid'], { cwd: tmp.dir });
  assert.equal(readFileSync(join(tmp.dir, 'proxy.pid'), 'utf8'), `${inDir.child.pid}\n`);
  inDir.child.kill('SIGINT');
  inDir.child.kill('SIGINT');
  const { code } = await inDir.exit();
  assert.ok(code === 0 || code === 1, String(code));
  assert.equal(existsSync(join(tmp.dir, 'proxy.pid')), false);
});

test('--pid-file: a second copy that cannot bind the port leaves the running proxy\'s file alone', async (t) => {
  const { child, tmp, port } = await spawnWith(t, (dir) => ['--pid-file', join(dir, 'proxy.pid')]);
  await child.started();
  const second = spawnProxy(['--sessions', join(tmp.dir, 'session_map.sqlite'), '--ip', '127.0.0.1', '--port', String(port), '--pid-file', join(tmp.dir, 'proxy.pid')]);
  t.after(() => second.kill());
  assert.equal((await second.exit()).code, 1);
  assert.equal(readFileSync(join(tmp.dir, 'proxy.pid'), 'utf8'), `${child.child.pid}\n`);
  assert.equal(await stop(child), 0);
});

test('--pid-file in a directory that does not exist: exit 1 with the path and the reason', async (t) => {
  const { child, tmp } = await spawnWith(t, (dir) => ['--pid-file', join(dir, 'missing', 'proxy.pid')]);
  assert.equal((await child.exit()).code, 1);
  const fatal = child.logs.lines.find((l) => l.level === 'fatal');
  assert.match(fatal?.msg ?? '', new RegExp(`^cannot write the pid file ${join(tmp.dir, 'missing', 'proxy.pid')}: ENOENT`));
});

test('--pid-file is left behind after SIGKILL (nothing can remove it); the next start overwrites it', async (t) => {
  const { child, tmp } = await spawnWith(t, (dir) => ['--pid-file', join(dir, 'proxy.pid')]);
  await child.started();
  child.child.kill('SIGKILL');
  await child.exited;
  const pidFile = join(tmp.dir, 'proxy.pid');
  assert.equal(readFileSync(pidFile, 'utf8'), `${child.child.pid}\n`);
  const { proc: next } = await startSpawnedProxy(t, join(tmp.dir, 'session_map.sqlite'), ['--pid-file', pidFile]);
  assert.equal(readFileSync(pidFile, 'utf8'), `${next.child.pid}\n`);
  assert.equal(await stop(next), 0);
  assert.equal(existsSync(pidFile), false);
});

test('SIGTERM sent the moment the start-up line appears still ends in exit 0 (handlers are in before the start)', async (t) => {
  for (let i = 0; i < 5; i++) {
    const { child } = await spawnWith(t, () => []);
    child.logs.waitFor((l) => l.msg === DAEMON_LOG.listening, 5000).then(
      () => child.child.kill('SIGTERM'),
      () => {},
    );
    const { code, signal } = await child.exit();
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `run ${i}`);
  }
});
