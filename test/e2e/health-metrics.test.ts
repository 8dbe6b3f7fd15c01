import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { VERSION } from '../../src/daemon.js';
import type { HealthBody } from '../../src/admin/health.js';
import { startInProcessProxy, type InProcessProxy } from '../helpers/in-process-proxy.js';
import { upstreamFor, type Seen } from '../helpers/upstream.js';
import { cookie, request } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { metricTypes, parseMetrics } from '../helpers/prometheus.js';
import { waitUntil } from '../helpers/wait.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

/** An in-process proxy with its metrics listener on 127.0.0.1:0, over a map that may not exist yet. */
async function setup(t: TestContext, options: { mapExists: boolean }) {
  const upstream = await upstreamFor(t, 'a');
  const proxy = await startInProcessProxy(t, { sessions: options.mapExists ? { alice: upstream.port } : {}, metricsPort: 0, metricsIp: '127.0.0.1' });
  const metricsPort = proxy.daemon.metricsAddress?.port;
  assert.ok(metricsPort !== undefined && metricsPort > 0, 'metrics listener started');
  return { dir: proxy.dir, map: proxy.map, upstream, proxy, metricsPort };
}

async function health(port: number): Promise<{ status: number; body: HealthBody; type: string | undefined }> {
  const r = await request(port, { path: '/health' });
  return { status: r.status, body: JSON.parse(r.body) as HealthBody, type: r.headers['content-type'] };
}

async function scrape(port: number): Promise<Map<string, number>> {
  const r = await request(port, { path: '/metrics' });
  assert.equal(r.status, 200);
  return parseMetrics(r.body);
}

function reloaded(proxy: InProcessProxy) {
  return proxy.logs.next(MAP_LOG.reloaded);
}

test('/health is 503 until a map has loaded, then 200 with version, uptime, sessions and the map read', async (t) => {
  const { map, upstream, proxy, metricsPort } = await setup(t, { mapExists: false });
  const before = await health(metricsPort);
  assert.equal(before.status, 503);
  assert.equal(before.type, 'application/json; charset=utf-8');
  assert.equal(before.body.status, 'no-map');
  assert.equal(before.body.sessions, 0);
  assert.equal(before.body.sessionMap.lastReloadAt, null);
  assert.equal(before.body.sessionMap.lastError?.reason, 'missing');

  const done = reloaded(proxy);
  map.addSession('alice', '127.0.0.1', upstream.port);
  map.addSession('bob', '127.0.0.1', upstream.port);
  await done;
  const after = await health(metricsPort);
  assert.equal(after.status, 200);
  assert.equal(after.body.status, 'ok');
  assert.equal(after.body.version, VERSION);
  assert.ok(after.body.uptimeSeconds > 0 && after.body.uptimeSeconds < 60, String(after.body.uptimeSeconds));
  assert.ok(after.body.sessions >= 1, 'the sessions in use');
  assert.equal(after.body.sessionMap.path, map.path);
  assert.equal(after.body.sessionMap.format, 'sqlite gxproxy2');
  assert.ok(after.body.sessionMap.lastReloadAgeSeconds !== null && after.body.sessionMap.lastReloadAgeSeconds >= 0 && after.body.sessionMap.lastReloadAgeSeconds < 10);
  assert.ok(Math.abs(Date.parse(after.body.sessionMap.lastReloadAt ?? '') - Date.now()) < 10_000);
  assert.equal(after.body.sessionMap.lastError, null);
});

test('/health stays 200 when a later read fails (the last good map is in use) and reports the error', async (t) => {
  const { map, proxy, metricsPort } = await setup(t, { mapExists: true });
  assert.equal((await health(metricsPort)).status, 200);
  writeFileSync(map.path, 'this is not an SQLite database, it is long enough to have a header'.repeat(10));
  assert.equal(await proxy.daemon.reload(), 'failed');
  const h = await health(metricsPort);
  assert.equal(h.status, 200);
  assert.equal(h.body.sessions, 1);
  assert.equal(h.body.sessionMap.lastError?.reason, 'corrupt');
  assert.equal(h.body.sessionMap.format, 'sqlite gxproxy2');
});

test('/metrics counts requests by status class, durations, proxy errors, WebSockets, reloads and sessions', async (t) => {
  const { map, proxy, metricsPort, dir } = await setup(t, { mapExists: true });
  const dead = await freePort();
  const done = reloaded(proxy);
  map.addSession('carol', '127.0.0.1', dead);
  await done;

  const r = await request(metricsPort, { path: '/metrics' });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
  const types = metricTypes(r.body);
  assert.equal(types.get('gie_proxy_http_requests_total'), 'counter');
  assert.equal(types.get('gie_proxy_http_request_duration_seconds'), 'histogram');
  assert.equal(types.get('gie_proxy_websockets_open'), 'gauge');
  assert.equal(types.get('gie_proxy_session_map_reload_duration_seconds'), 'histogram');
  assert.equal(types.get('process_cpu_seconds_total'), 'counter', 'process metrics are included');
  const start = parseMetrics(r.body);
  assert.equal(start.get('gie_proxy_http_requests_total{status_class="2xx"}'), 0, 'zero before any request');
  assert.equal(start.get('gie_proxy_sessions'), 2);
  assert.ok((start.get('gie_proxy_session_map_reloads_total') ?? 0) >= 2);
  assert.ok((start.get('gie_proxy_session_map_reload_duration_seconds_count') ?? 0) >= 2);
  assert.ok((start.get('gie_proxy_session_map_last_reload_timestamp_seconds') ?? 0) > Date.now() / 1000 - 60);

  assert.equal((await request(proxy.port, { headers: cookie('alice') })).status, 200);
  assert.equal((await request(proxy.port, { headers: cookie('alice') })).status, 200);
  assert.equal((await request(proxy.port, { headers: cookie('nobody') })).status, 404);
  assert.equal((await request(proxy.port, { headers: cookie('carol') })).status, 502);

  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/jupyter/api/kernels/1/channels`, { headers: cookie('alice') });
  t.after(() => ws.terminate());
  await once(ws, 'message');
  // A request is counted when the server side of its response closes, which
  // can come a moment after the client has read the last byte.
  const open = await waitUntil('all four requests to be counted', async () => {
    const m = await scrape(metricsPort);
    return m.get('gie_proxy_http_request_duration_seconds_count') === 4 && m;
  });
  assert.equal(open.get('gie_proxy_http_requests_total{status_class="2xx"}'), 2);
  assert.equal(open.get('gie_proxy_http_requests_total{status_class="4xx"}'), 1);
  assert.equal(open.get('gie_proxy_http_requests_total{status_class="5xx"}'), 1);
  assert.equal(open.get('gie_proxy_http_request_duration_seconds_count'), 4);
  assert.ok((open.get('gie_proxy_http_request_duration_seconds_sum') ?? 0) > 0);
  assert.equal(open.get('gie_proxy_http_request_duration_seconds_bucket{le="+Inf"}'), 4);
  assert.equal(open.get('gie_proxy_errors_total{kind="ECONNREFUSED"}'), 1);
  assert.equal(open.get('gie_proxy_websockets_open'), 1);

  ws.close();
  await once(ws, 'close');
  // The proxy sees the close a moment after the client, and says so only in the gauge.
  await waitUntil('gie_proxy_websockets_open to drop to 0', async () => (await scrape(metricsPort)).get('gie_proxy_websockets_open') === 0);

  writeFileSync(join(dir, 'session_map.sqlite'), 'garbage'.repeat(100));
  await proxy.daemon.reload();
  const failed = await scrape(metricsPort);
  // The watcher may also have tried the garbage file: at least one failure, all of them "corrupt".
  assert.ok((failed.get('gie_proxy_session_map_reload_failures_total{reason="corrupt"}') ?? 0) >= 1);
  assert.equal(failed.get('gie_proxy_sessions'), 2, 'the last good map is still in use');
});

test('each proxy has its own registry: two in one process count separately', async (t) => {
  const one = await setup(t, { mapExists: true });
  const two = await setup(t, { mapExists: true });
  assert.equal((await request(one.proxy.port, { headers: cookie('alice') })).status, 200);
  assert.equal((await scrape(one.metricsPort)).get('gie_proxy_http_requests_total{status_class="2xx"}'), 1);
  assert.equal((await scrape(two.metricsPort)).get('gie_proxy_http_requests_total{status_class="2xx"}'), 0);
});

test('the metrics listener serves /health and /metrics only, and takes nothing from the proxied paths', async (t) => {
  const { proxy, metricsPort } = await setup(t, { mapExists: true });
  for (const path of ['/', '/healthz', '/metrics/x', '/galaxy/gie_proxy/jupyter/']) {
    const r = await request(metricsPort, { path, headers: cookie('alice') });
    assert.equal(r.status, 404, path);
  }
  assert.equal((await request(metricsPort, { path: '/metrics', method: 'POST' })).status, 405);
  const head = await request(metricsPort, { path: '/health', method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  // On the proxy's own port, /health and /metrics are container paths like any other.
  const routed = await request(proxy.port, { path: '/metrics', headers: cookie('alice') });
  assert.equal(routed.status, 200);
  assert.equal((JSON.parse(routed.body) as Seen).upstream, 'a');
  assert.equal((await request(proxy.port, { path: '/health' })).status, 404);
});

test('an observer passed to startDaemon still gets every report when metrics are on', async (t) => {
  const upstream = await upstreamFor(t, 'a');
  const seen: string[] = [];
  const { daemon, port } = await startInProcessProxy(t, {
    sessions: { alice: upstream.port },
    metricsPort: 0,
    metricsIp: '127.0.0.1',
    observer: {
      requestDone: (status) => seen.push(`request ${status}`),
      reloaded: (sessions) => seen.push(`reloaded ${sessions}`),
    },
  });
  assert.equal((await request(port, { headers: cookie('alice') })).status, 200);
  await waitUntil('the request report', () => seen.includes('request 200'));
  assert.deepEqual(seen, ['reloaded 1', 'request 200']);
  const metrics = await scrape(daemon.metricsAddress?.port ?? 0);
  assert.equal(metrics.get('gie_proxy_http_requests_total{status_class="2xx"}'), 1);
  assert.equal(metrics.get('gie_proxy_sessions'), 1);
});
