/**
 * The proxy under supervisord (Debian's `supervisor`), run from the README's
 * `[program:galaxy_nodejs_proxy]` block with test paths: a private supervisord
 * (its own socket, pid file and logs in a temp dir, no system config).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { MAIN_JS } from '../helpers/spawned-proxy.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { cookie, request } from '../helpers/client.js';
import { readLogFile, waitForLogLines } from '../helpers/log-file.js';
import { freePort } from '../helpers/ports.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { isAlive } from '../helpers/processes.js';
import { startSupervisord } from '../helpers/supervisord.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';
import { DAEMON_LOG } from '../../src/daemon.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';
import { CLI_LOG } from '../../src/cli/run.js';

const PROGRAM = 'galaxy_nodejs_proxy';
/** The README documents the deployment guide's 5 s; 1 s keeps the test short and still means "stayed up". */
const TEST_STARTSECS = 1;

test('supervisord runs the README block: RUNNING, routes, restarts after kill -9, not after exit 0, stops cleanly', { timeout: 90_000 }, async (t) => {
  const tmp = tempDir('gie-supervisord-');
  t.after(() => tmp.remove());
  const galaxyRoot = join(tmp.dir, 'galaxy');
  mkdirSync(join(galaxyRoot, 'database'), { recursive: true });
  mkdirSync(join(tmp.dir, 'log'));
  const upstream = await startUpstream('jupyter');
  t.after(() => upstream.close());
  const port = await freePort();
  const proxyLog = join(tmp.dir, 'log', 'galaxy_nodejs_proxy.log');

  let program = readmeBlock('ini', '[program:galaxy_nodejs_proxy]');
  program = adapt(program, 'GALAXY_ROOT/lib/galaxy/web/proxy/js/lib/main.js', MAIN_JS);
  program = adapt(program, 'GALAXY_ROOT', galaxyRoot);
  program = adapt(program, '--ip 0.0.0.0 --port 8800', `--ip 127.0.0.1 --port ${port}`);
  program = adapt(program, 'GALAXY_USER', userInfo().username);
  program = adapt(program, 'startsecs       = 5', `startsecs       = ${TEST_STARTSECS}`);
  program = adapt(program, '/var/log/galaxy/galaxy_nodejs_proxy.log', proxyLog);
  const sv = await startSupervisord(t, tmp.dir, PROGRAM, program);
  if (sv === undefined) return;
  const { ctl, status, waitForState } = sv;
  const supervisordLog = sv.log;
  const proxyPids = sv.pids;
  const routesToUpstream = async (): Promise<void> => {
    const r = await request(port, { headers: cookie('alice-session') });
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as Seen).upstream, 'jupyter');
  };
  const supervisordLogHas = sv.logHas;

  // 1. Started by supervisord: RUNNING once it stayed up for startsecs.
  const t0 = Date.now();
  const first = await waitForState('RUNNING');
  const startMs = Date.now() - t0;
  assert.ok(first.pid !== undefined);
  proxyPids.add(first.pid);
  t.diagnostic(`status after start (${startMs} ms): ${first.line}`);
  // redirect_stderr: the proxy's stderr is the same pipe as its stdout.
  assert.equal(readlinkSync(`/proc/${first.pid}/fd/2`), readlinkSync(`/proc/${first.pid}/fd/1`));

  // 2. Galaxy writes the map after the proxy started; the proxy picks it up and routes.
  new GalaxySqliteWriter(join(galaxyRoot, 'database', 'session_map.sqlite')).addSession('alice-session', '127.0.0.1', upstream.port);
  await waitForLogLines(proxyLog, (l) => l.msg === MAP_LOG.reloaded && l.pid === first.pid && (l.sessions as number) >= 1);
  await routesToUpstream();

  // 3. kill -9: an unexpected exit, so supervisord starts it again, and it routes again.
  const killedAt = Date.now();
  process.kill(first.pid, 'SIGKILL');
  const second = await waitForState('RUNNING', (s) => s.pid !== undefined && s.pid !== first.pid);
  assert.ok(second.pid !== undefined);
  proxyPids.add(second.pid);
  t.diagnostic(`status after kill -9 (${Date.now() - killedAt} ms): ${second.line}`);
  assert.ok(supervisordLogHas(new RegExp(`exited: ${PROGRAM} \\(terminated by SIGKILL; not expected\\)`)), readFileSync(supervisordLog, 'utf8'));
  // RUNNING only says it stayed up for startsecs (1 s here): its start-up line says it listens.
  await waitForLogLines(proxyLog, (l) => l.msg === DAEMON_LOG.listening && l.pid === second.pid);
  await routesToUpstream();

  // 4. SIGTERM straight to the proxy: it drains and exits 0, which
  //    `autorestart = unexpected` takes as expected: EXITED, not restarted.
  process.kill(second.pid, 'SIGTERM');
  const exited = await waitForState('EXITED');
  t.diagnostic(`status after SIGTERM to the proxy: ${exited.line}`);
  assert.ok(supervisordLogHas(new RegExp(`exited: ${PROGRAM} \\(exit status 0; expected\\)`)), readFileSync(supervisordLog, 'utf8'));
  // A restart would come within supervisord's one-second tick; give it well over that.
  await delay(TEST_STARTSECS * 1000 + 1500);
  assert.equal((await status()).state, 'EXITED', 'not restarted after an expected exit');
  assert.equal(readFileSync(supervisordLog, 'utf8').match(new RegExp(`spawned: '${PROGRAM}'`, 'g'))?.length, 2);

  // 5. supervisorctl start / stop: stop sends SIGTERM, the proxy exits 0 at once, STOPPED.
  assert.match(await ctl('start', PROGRAM), /started/);
  const third = await status();
  assert.equal(third.state, 'RUNNING');
  assert.ok(third.pid !== undefined);
  proxyPids.add(third.pid);
  await routesToUpstream();
  const stopAt = Date.now();
  assert.match(await ctl('stop', PROGRAM), /stopped/);
  const stopMs = Date.now() - stopAt;
  const stopped = await status();
  t.diagnostic(`supervisorctl stop took ${stopMs} ms; status: ${stopped.line}`);
  assert.equal(stopped.state, 'STOPPED');
  assert.ok(supervisordLogHas(new RegExp(`stopped: ${PROGRAM} \\(exit status 0\\)`)), readFileSync(supervisordLog, 'utf8'));
  await assert.rejects(request(port, { headers: cookie('alice-session'), timeoutMs: 1000 }), /ECONNREFUSED/);

  // 6. The logs are where the block says: every run's JSON lines in stdout_logfile, no separate stderr log.
  const lines = readLogFile(proxyLog);
  const starts = lines.filter((l) => l.msg === DAEMON_LOG.listening).map((l) => l.pid);
  assert.deepEqual(starts, [first.pid, second.pid, third.pid]);
  assert.equal(lines.filter((l) => l.msg === CLI_LOG.stopped).length, 2, 'the SIGTERM and the supervisorctl stop');
  assert.deepEqual(readdirSync(join(tmp.dir, 'log')).filter((f) => f.includes('stderr')), []);
  t.diagnostic(`log lines in ${PROGRAM}.log: ${lines.length}; runs: ${starts.join(', ')}`);

  for (const line of readFileSync(supervisordLog, 'utf8').split('\n')) {
    if (/ (spawned|success|exited|stopped|waiting): /.test(line)) t.diagnostic(`supervisord.log: ${line.replace(/^\S+ \S+ /, '')}`);
  }

  // 7. supervisord itself stops cleanly, leaving no proxy behind.
  assert.equal(await sv.stop(), 0);
  assert.deepEqual([...proxyPids].filter(isAlive), []);
});
