/**
 * The README's systemd unit: checked by systemd's own parser (no systemd
 * needs to be running), and its ExecStart run as systemd would run it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { ProxyProcess, MAIN_JS } from '../helpers/spawned-proxy.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { cookie, request } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { runBounded, stopChild } from '../helpers/processes.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { requireTool } from '../helpers/tools.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';

const UNIT_HEADER = '# /etc/systemd/system/galaxy-gie-proxy.service\n';

/** The README's unit for a Galaxy at `root`, run by this user, on test ports. */
function unitFor(root: string, port: number, metricsPort: number): string {
  let unit = readmeBlock('ini', UNIT_HEADER);
  unit = adapt(unit, 'ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
  unit = adapt(unit, '/srv/galaxy', root);
  unit = adapt(unit, '--ip 0.0.0.0 --port 8800 --metrics-port 9800', `--ip 127.0.0.1 --port ${port} --metrics-port ${metricsPort} --metrics-ip 127.0.0.1`);
  unit = adapt(unit, 'User=galaxy', `User=${userInfo().username}`);
  return unit;
}

/** A Galaxy root whose lib/galaxy/web/proxy/js is this tree. */
function galaxyRoot(dir: string): string {
  const root = join(dir, 'galaxy');
  mkdirSync(join(root, 'lib', 'galaxy', 'web', 'proxy'), { recursive: true });
  mkdirSync(join(root, 'database'));
  symlinkSync(join(MAIN_JS, '..', '..'), join(root, 'lib', 'galaxy', 'web', 'proxy', 'js'));
  return root;
}

function execStart(unit: string): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit);
  assert.ok(line);
  return line[1].split(' ');
}

test('the README systemd unit passes systemd-analyze verify without a warning (and a typo would not)', async (t) => {
  const analyze = requireTool(t, 'systemd-analyze', 'apt-get install systemd');
  if (analyze === undefined) return;
  const tmp = tempDir('gie-systemd-');
  t.after(() => tmp.remove());
  const root = galaxyRoot(tmp.dir);
  const unit = unitFor(root, 8800, 9800).replace(`User=${userInfo().username}`, 'User=root').replace('Group=galaxy', 'Group=root');
  const file = join(tmp.dir, 'galaxy-gie-proxy.service');
  writeFileSync(file, unit);
  const ok = await runBounded(analyze, ['verify', '--man=no', file], { timeoutMs: 30_000, allowFailure: true });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr.trim(), '', 'no warning');

  writeFileSync(file, unit.replace('Restart=on-failure', 'Restart=on-failur'));
  const typo = await runBounded(analyze, ['verify', '--man=no', file], { timeoutMs: 30_000, allowFailure: true });
  assert.match(typo.stderr, /restart specifier.*on-failur/, `a bad value is reported: ${JSON.stringify(typo)}`);
});

test('the unit\'s ExecStart, run from its WorkingDirectory: routes, exits 0 on SIGTERM, which Restart=on-failure treats as a clean stop', async (t) => {
  const tmp = tempDir('gie-systemd-');
  const upstream = await startUpstream('jupyter');
  const root = galaxyRoot(tmp.dir);
  new GalaxySqliteWriter(join(root, 'database', 'session_map.sqlite')).addSession('k', '127.0.0.1', upstream.port);
  const port = await freePort();
  const metricsPort = await freePort();
  const unit = unitFor(root, port, metricsPort);
  assert.match(unit, new RegExp(`^WorkingDirectory=${root}$`, 'm'));
  const [command, ...args] = execStart(unit);
  const proxy = new ProxyProcess(spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] }));
  t.after(async () => {
    await stopChild(proxy.child);
    await upstream.close();
    tmp.remove();
  });
  await proxy.started();
  assert.equal((JSON.parse((await request(port, { headers: cookie('k') })).body) as Seen).upstream, 'jupyter');
  assert.equal((await request(metricsPort, { path: '/health' })).status, 200);
  proxy.child.kill('SIGTERM');
  assert.equal((await proxy.exit()).code, 0);
});
