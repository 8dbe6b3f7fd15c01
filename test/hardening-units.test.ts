import { test } from 'node:test';
import assert from 'node:assert/strict';
import { corsPolicy } from '../src/http/headers.js';
import { ConfigError } from '../src/cli/options.js';
import { ANSWERS, caseForClientError, caseForProxyError, ProxyTimeoutError } from '../src/http/answers.js';
import { stripHopByHop, stripHopByHopResponse } from '../src/http/headers.js';
import { sessionTag } from '../src/log.js';
import { DEFAULTS, MAX_TIMER_MS, resolveOptions } from '../src/cli/options.js';
import { originFormOf } from '../src/http/server.js';
import { join } from 'node:path';
import { spawnProxy } from './helpers/child.js';
import { rawExchange, request } from './helpers/client.js';
import { tempDir } from './helpers/galaxy-map.js';
import { startSpawnedProxy } from './helpers/spawned-proxy.js';

test('options: time-outs default to 30 s for headers, 5 min for containers, never for idle WebSockets', () => {
  const o = resolveOptions({ sessionsPath: '/x.sqlite' });
  assert.equal(o.headersTimeoutMs, 30_000);
  assert.equal(o.proxyTimeoutMs, 300_000);
  assert.equal(o.webSocketIdleTimeoutMs, 0);
  assert.equal(o.xfwd, false);
  assert.equal(o.corsOrigins, null);
  assert.equal(DEFAULTS.corsOrigins, null);
});

test('options: time-outs must fit a Node timer; origins must be bare http(s) origins and are normalised', () => {
  for (const key of ['headersTimeoutMs', 'proxyTimeoutMs', 'webSocketIdleTimeoutMs', 'shutdownGraceMs'] as const) {
    for (const bad of [-1, Number.NaN, MAX_TIMER_MS + 1]) {
      assert.throws(() => resolveOptions({ sessionsPath: '/x.sqlite', [key]: bad }), ConfigError, `${key}=${bad}`);
    }
    assert.equal(resolveOptions({ sessionsPath: '/x.sqlite', [key]: MAX_TIMER_MS })[key], MAX_TIMER_MS);
  }
  const o = resolveOptions({ sessionsPath: '/x.sqlite', corsOrigins: ['https://Galaxy.Example.org:443/', 'http://localhost:8080', 'https://[::1]:8443'] });
  assert.deepEqual(o.corsOrigins, ['https://galaxy.example.org', 'http://localhost:8080', 'https://[::1]:8443']);
  assert.ok(Object.isFrozen(o.corsOrigins));
  assert.deepEqual(resolveOptions({ sessionsPath: '/x.sqlite', corsOrigins: [] }).corsOrigins, []);
  for (const bad of ['galaxy.example.org', 'ftp://galaxy.example.org', 'https://galaxy.example.org/path', 'https://u:p@galaxy.example.org', 'https://galaxy.example.org?x', '*', 'null']) {
    assert.throws(
      () => resolveOptions({ sessionsPath: '/x.sqlite', corsOrigins: [bad] }),
      (err: ConfigError) => err instanceof ConfigError && err.option === 'corsOrigins' && err.value === bad,
      bad,
    );
  }
});

test('command line: the hardening flags parse; bad values exit 2 before anything starts', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--headers-timeout', 'soon'], /--headers-timeout <ms>.*whole number of milliseconds/],
    [['--proxy-timeout', String(MAX_TIMER_MS + 1)], /--proxy-timeout <ms>.*from 0 to 2147483647/],
    [['--ws-idle-timeout', '-5'], /--ws-idle-timeout <ms>/],
    [['--cors-origin', 'https://ok.example,galaxy.example.org'], /option '--cors-origin <origins>' argument .* is invalid\. "galaxy\.example\.org" must be an origin/],
  ];
  for (const [args, message] of cases) {
    const proc = spawnProxy(['--sessions', '/nonexistent/map.sqlite', '--port', '1', ...args]);
    const { code } = await proc.exit();
    assert.equal(code, 2, args.join(' '));
    assert.match(proc.stderr, message);
  }
});

test('command line: the hardening flags reach the proxy', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const proxy = await startSpawnedProxy(t, join(tmp.dir, 'session_map.sqlite'), [
    '--headers-timeout', '300', '--proxy-timeout', '2000', '--ws-idle-timeout', '3000', '--xfwd',
    '--cors-origin', 'https://a.example, https://b.example:8443',
  ]);
  const granted = await request(proxy.port, { headers: { origin: 'https://b.example:8443' } });
  assert.equal(granted.headers['access-control-allow-origin'], 'https://b.example:8443');
  const refused = await request(proxy.port, { headers: { origin: 'https://c.example' } });
  assert.equal(refused.headers['access-control-allow-origin'], undefined);
  const silent = await rawExchange(proxy.port, '', 3000);
  assert.ok(silent.closedByServer, '--headers-timeout 300 dropped a silent client');
  assert.match(silent.text, /^HTTP\/1\.1 408 /);
});

test('caseForClientError and caseForProxyError: the status table', () => {
  const statusForClientError = (code: string | undefined): number => ANSWERS[caseForClientError(code)].status;
  const statusForProxyError = (err: NodeJS.ErrnoException): number => ANSWERS[caseForProxyError(err)].status;
  assert.equal(statusForClientError('ERR_HTTP_REQUEST_TIMEOUT'), 408);
  assert.equal(statusForClientError('HPE_HEADER_OVERFLOW'), 431);
  for (const code of ['HPE_INVALID_METHOD', 'HPE_INVALID_HEADER_TOKEN', 'HPE_UNEXPECTED_CONTENT_LENGTH', undefined]) assert.equal(statusForClientError(code), 400);
  assert.equal(statusForProxyError(new ProxyTimeoutError(10)), 504);
  assert.equal(statusForProxyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 502);
});

test('originFormOf: absolute form loses its scheme and authority; other forms are refused', () => {
  const table: Array<[string, string, string | undefined]> = [
    ['http://other-host/x?y=1', 'GET', '/x?y=1'],
    ['http://other-host', 'GET', '/'],
    ['https://user@other-host:8080?q', 'GET', '/?q'],
    ['ws://other-host/api/kernels', 'GET', '/api/kernels'],
    ['*', 'OPTIONS', '*'],
    ['*', 'GET', undefined],
    ['other-host:443', 'GET', undefined],
    ['x', 'GET', undefined],
  ];
  for (const [url, method, expected] of table) assert.equal(originFormOf(url, method), expected, `${method} ${url}`);
});

test('stripHopByHopResponse: connection fields, listed fields and framing go; end-to-end fields stay', () => {
  const headers: Record<string, string> = {
    connection: 'close, X-Private, content-length',
    'x-private': '1',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    'proxy-authenticate': 'Basic',
    trailer: 'x',
    upgrade: 'h2c',
    'content-length': '10',
    'set-cookie': 'a=b',
  };
  stripHopByHopResponse(headers);
  assert.deepEqual(headers, { 'content-length': '10', 'set-cookie': 'a=b' });
  const request: Record<string, string> = { expect: '100-continue', connection: 'keep-alive, x-hop', 'x-hop': '1', te: 'trailers', cookie: 'c' };
  stripHopByHop(request, false);
  assert.deepEqual(request, { cookie: 'c' });
});

test('corsPolicy: legacy echo without a list; with one, listed origins only, plus Vary: Origin', () => {
  const echo = corsPolicy(null);
  const h1: Record<string, unknown> = {};
  echo(h1, 'https://any.example');
  assert.deepEqual(h1, { 'access-control-allow-origin': 'https://any.example', 'access-control-allow-credentials': 'true' });
  const strict = corsPolicy(['https://galaxy.example.org']);
  const h2: Record<string, unknown> = { vary: 'Origin' };
  strict(h2, 'https://galaxy.example.org');
  assert.deepEqual(h2, { vary: 'Origin', 'access-control-allow-origin': 'https://galaxy.example.org', 'access-control-allow-credentials': 'true' });
  const h3: Record<string, unknown> = { 'access-control-allow-origin': '*', 'Access-Control-Allow-Methods': 'GET' };
  strict(h3, 'https://evil.example');
  assert.deepEqual(h3, { vary: 'Origin' });
  const none = corsPolicy([]);
  const h5: Record<string, unknown> = {};
  none(h5, 'https://galaxy.example.org');
  assert.deepEqual(h5, { vary: 'Origin' }, "--cors-origin '' grants no origin");
  const h4: Record<string, unknown> = { 'access-control-allow-origin': '*' };
  strict(h4, undefined);
  assert.deepEqual(h4, { 'access-control-allow-origin': '*' }, 'no Origin: not a CORS request, left alone');
});

test('log fields: a session appears as a short stable tag', () => {
  const key = 'f00dfeed'.repeat(4);
  assert.equal(sessionTag(key), sessionTag(key));
  assert.match(sessionTag(key), /^[0-9a-f]{10}$/);
  assert.notEqual(sessionTag(key), sessionTag(`${key}x`));
  assert.ok(!key.includes(sessionTag(key)));
});
