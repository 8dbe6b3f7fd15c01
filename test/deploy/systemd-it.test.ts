/**
 * The README's systemd unit for the `gx-it-proxy` bin: checked by systemd's
 * own parser, and its ExecStart run from its WorkingDirectory as systemd
 * would run it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { ProxyProcess } from '../helpers/child.js';
import { request } from '../helpers/client.js';
import { SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX } from '../helpers/it-proxy.js';
import { REPO_ROOT } from '../helpers/package.js';
import { freePort } from '../helpers/ports.js';
import { runBounded, stopChild } from '../helpers/processes.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { requireTool } from '../helpers/tools.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';

const EP = { key: '24q1dbzrknq1v', token: '1a1p13jnahscj' };

/** The README's gx-it-proxy unit for a Galaxy at `root`, run by this user, on test ports. */
function itUnitFor(root: string, port: number, metricsPort: number): string {
  let unit = readmeBlock('ini', '# /etc/systemd/system/gx-it-proxy.service\n');
  unit = adapt(unit, 'ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
  unit = adapt(unit, '/opt/galaxy-gie-proxy/bin/gx-it-proxy.js', join(REPO_ROOT, 'bin', 'gx-it-proxy.js'));
  unit = adapt(unit, '/srv/galaxy', root);
  unit = adapt(unit, '--port 4002', `--port ${port}`);
  unit = adapt(unit, '--metrics-port 9802', `--metrics-port ${metricsPort} --metrics-ip 127.0.0.1`);
  return adapt(unit, 'User=galaxy', `User=${userInfo().username}`);
}

test('the README gx-it-proxy unit passes systemd-analyze verify without a warning', async (t) => {
  const analyze = requireTool(t, 'systemd-analyze', 'apt-get install systemd');
  if (analyze === undefined) return;
  const tmp = tempDir('gie-systemd-it-');
  t.after(() => tmp.remove());
  const root = join(tmp.dir, 'galaxy');
  mkdirSync(join(root, 'database'), { recursive: true });
  const unit = itUnitFor(root, 4002, 9802).replace(`User=${userInfo().username}`, 'User=root').replace('Group=galaxy', 'Group=root');
  const file = join(tmp.dir, 'gx-it-proxy.service');
  writeFileSync(file, unit);
  const ok = await runBounded(analyze, ['verify', '--man=no', file], { timeoutMs: 30_000, allowFailure: true });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr.trim(), '', 'no warning');
});

test('the gx-it-proxy unit\'s ExecStart, run from its WorkingDirectory before Galaxy made the map: /health 503 (no map) then 200, routes entry points once saved, exit 0 on SIGTERM', async (t) => {
  const tmp = tempDir('gie-systemd-it-');
  const container = await startUpstream('jupyter');
  t.after(async () => {
    await container.close();
    tmp.remove();
  });
  const root = join(tmp.dir, 'galaxy');
  mkdirSync(join(root, 'database'), { recursive: true });
  const port = await freePort();
  const metricsPort = await freePort();
  const unit = itUnitFor(root, port, metricsPort);
  const line = /^ExecStart=(.*)$/m.exec(unit);
  assert.ok(line);
  const [command, ...args] = line[1].split(' ');
  const proxy = new ProxyProcess(spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] }));
  t.after(() => stopChild(proxy.child));
  await proxy.started();
  // Before Galaxy's first IT launch there is no map: /health says so (README, Health and metrics).
  const before = await request(metricsPort, { path: '/health' });
  assert.equal(before.status, 503);
  assert.equal((JSON.parse(before.body) as { status: string }).status, 'no-map');
  const map = new SqlAlchemyItWriter(join(root, 'database', 'interactivetools_map.sqlite'));
  t.after(() => map.close());
  map.save({ ...EP, host: '127.0.0.1', port: container.port });
  await proxy.logs.waitFor((l) => l.msg === 'session map reloaded' && (l.sessions as number) >= 1, 10_000);
  assert.equal((await request(metricsPort, { path: '/health' })).status, 200);
  const r = await request(port, { path: `${IT_PREFIX}/${EP.key}/${EP.token}/tree` });
  assert.equal((JSON.parse(r.body) as Seen).url, '/tree');
  proxy.child.kill('SIGTERM');
  assert.equal((await proxy.exit()).code, 0);
});
