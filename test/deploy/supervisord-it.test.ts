/**
 * The `gx-it-proxy` bin under supervisord, run from the README's
 * `[program:gx_it_proxy]` block with test paths (gravity's gx_it_proxy off,
 * this proxy as its own program).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { request } from '../helpers/client.js';
import { SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX } from '../helpers/it-proxy.js';
import { readLogFile, waitForLogLines } from '../helpers/log-file.js';
import { REPO_ROOT } from '../helpers/package.js';
import { freePort } from '../helpers/ports.js';
import { isAlive } from '../helpers/processes.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { startSupervisord } from '../helpers/supervisord.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';

const PROGRAM = 'gx_it_proxy';
const EP = { key: '24q1dbzrknq1v', token: '1a1p13jnahscj' };

test('supervisord runs the README\'s gx_it_proxy block: RUNNING before the map exists, routes once Galaxy saves an entry point, restarted after kill -9, stops with exit 0', { timeout: 90_000 }, async (t) => {
  const tmp = tempDir('gie-supervisord-it-');
  t.after(() => tmp.remove());
  const galaxyRoot = join(tmp.dir, 'galaxy');
  mkdirSync(join(galaxyRoot, 'database'), { recursive: true });
  mkdirSync(join(tmp.dir, 'log'));
  const container = await startUpstream('jupyter');
  t.after(() => container.close());
  const port = await freePort();
  const proxyLog = join(tmp.dir, 'log', `${PROGRAM}.log`);

  let program = readmeBlock('ini', `[program:${PROGRAM}]`);
  program = adapt(program, '/opt/galaxy-gie-proxy/bin/gx-it-proxy.js', join(REPO_ROOT, 'bin', 'gx-it-proxy.js'));
  program = adapt(program, 'GALAXY_ROOT', galaxyRoot);
  program = adapt(program, '--port 4002', `--port ${port}`);
  program = adapt(program, 'GALAXY_USER', userInfo().username);
  program = adapt(program, 'startsecs       = 5', 'startsecs       = 1');
  program = adapt(program, '/var/log/galaxy/gx_it_proxy.log', proxyLog);
  const sv = await startSupervisord(t, tmp.dir, PROGRAM, program);
  if (sv === undefined) return;

  const routes = async (): Promise<void> => {
    const byPath = await request(port, { path: `${IT_PREFIX}/${EP.key}/${EP.token}/tree` });
    assert.equal(byPath.status, 200, byPath.body);
    assert.equal((JSON.parse(byPath.body) as Seen).url, '/tree');
    const byName = await request(port, { path: '/lab', headers: { host: `${EP.key}-${EP.token}.ep.interactivetool.galaxy.example.org` } });
    assert.equal((JSON.parse(byName.body) as Seen).url, '/lab');
  };

  // 1. Started before Galaxy ever wrote the map (`--ip localhost`, as gravity passes it).
  const first = await sv.waitForState('RUNNING');
  assert.ok(first.pid !== undefined);
  assert.equal((await request(port, { path: `${IT_PREFIX}/${EP.key}/${EP.token}/` })).status, 404);

  // 2. Galaxy's first IT launch creates the map; the proxy routes it.
  const map = new SqlAlchemyItWriter(join(galaxyRoot, 'database', 'interactivetools_map.sqlite'));
  t.after(() => map.close());
  map.save({ ...EP, host: '127.0.0.1', port: container.port });
  await waitForLogLines(proxyLog, (l) => l.msg === 'session map reloaded' && l.pid === first.pid && (l.sessions as number) >= 1);
  await routes();

  // 3. kill -9: restarted, and it routes again from the map as it is.
  process.kill(first.pid, 'SIGKILL');
  const second = await sv.waitForState('RUNNING', (s) => s.pid !== undefined && s.pid !== first.pid);
  assert.ok(sv.logHas(new RegExp(`exited: ${PROGRAM} \\(terminated by SIGKILL; not expected\\)`)));
  // Its start-up read is logged before it listens (and RUNNING only says it stayed up for startsecs): the start-up line.
  await waitForLogLines(proxyLog, (l) => l.msg === 'session map reloaded' && l.pid === second.pid && (l.sessions as number) >= 1);
  await waitForLogLines(proxyLog, (l) => l.msg === 'proxy listening' && l.pid === second.pid);
  await routes();

  // 4. supervisorctl stop: SIGTERM, exit 0, STOPPED.
  assert.match(await sv.ctl('stop', PROGRAM), /stopped/);
  assert.equal((await sv.status()).state, 'STOPPED');
  assert.ok(sv.logHas(new RegExp(`stopped: ${PROGRAM} \\(exit status 0\\)`)));
  await assert.rejects(request(port, { timeoutMs: 1000 }), /ECONNREFUSED/);

  // 5. Both runs' JSON lines in stdout_logfile; supervisord stops cleanly.
  const lines = readLogFile(proxyLog);
  assert.deepEqual(lines.filter((l) => l.msg === 'proxy listening').map((l) => l.pid), [first.pid, second.pid]);
  assert.deepEqual(lines.filter((l) => l.level === 'raw'), [], 'nothing but JSON lines');
  assert.equal(JSON.stringify(lines).includes(EP.token), false, 'no entry point token in the log');
  assert.equal(await sv.stop(), 0);
  assert.deepEqual([...sv.pids].filter(isAlive), []);
});
