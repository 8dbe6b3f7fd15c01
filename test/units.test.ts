import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { resolveOptions } from '../src/cli/options.js';
import { ConfigError } from '../src/cli/options.js';
import { ANSWERS, caseForProxyError } from '../src/http/answers.js';
import { addCorsEcho, applyRStudioHeaders, isRStudioUrl, rewriteLocalhostRedirect } from '../src/http/headers.js';
import { sessionKeyFrom } from '../src/routing/cookie-router.js';
import { stripHopByHop } from '../src/http/headers.js';
import { RouteTable } from '../src/routing/route-table.js';
import { invalidTargetReason } from '../src/session-map/rows.js';
import { SqliteSessionMap } from '../src/session-map/sqlite-store.js';
import { toSnapshot } from '../src/session-map/rows.js';
import { GalaxySqliteWriter, tempDir } from './helpers/galaxy-map.js';

test('options: defaults are the legacy ones, the result is frozen, bad values name the option', () => {
  const o = resolveOptions({ sessionsPath: '/m.sqlite' });
  assert.equal(o.ip, 'localhost');
  assert.equal(o.port, 8000);
  assert.equal(o.cookieName, 'galaxysession');
  assert.equal(o.reverseProxy, false);
  assert.equal(o.shutdownGraceMs, 5000);
  assert.ok(Object.isFrozen(o));
  assert.throws(() => resolveOptions({ sessionsPath: '/m', port: 70000 }), (e: ConfigError) => e.code === 'ERR_GIE_CONFIG' && e.option === 'port');
  assert.throws(() => resolveOptions({ sessionsPath: '/m', cookieName: 'a;b' }), /option cookieName: "a;b" must be a cookie name/);
  assert.throws(() => resolveOptions({ sessionsPath: '' }), /option sessionsPath/);
});

test('failure → status: one table', () => {
  const table: Array<[string | undefined, number, boolean]> = [
    ['ECONNREFUSED', 502, true],
    ['ECONNRESET', 502, true],
    ['EHOSTUNREACH', 502, true],
    ['ENOTFOUND', 502, true],
    ['ETIMEDOUT', 504, true],
    ['ERR_GIE_PROXY_TIMEOUT', 504, true],
    ['ERR_SOMETHING_ELSE', 502, false],
    [undefined, 502, false],
  ];
  for (const [code, status, known] of table) {
    const err = Object.assign(new Error('x'), { code });
    const answerCase = caseForProxyError(err);
    assert.equal(ANSWERS[answerCase].status, status, String(code));
    assert.equal(answerCase !== 'internal', known, String(code));
  }
});

test('session cookie: exact raw value of the named cookie, never throws', () => {
  assert.equal(sessionKeyFrom('galaxysession=abc', 'galaxysession'), 'abc');
  assert.equal(sessionKeyFrom('a=1; galaxysession=abc%2F; b=2', 'galaxysession'), 'abc%2F', 'not URL-decoded');
  assert.equal(sessionKeyFrom('xgalaxysession=abc', 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom('galaxysession=', 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom(undefined, 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom('other=1', 'galaxysession'), undefined);
  assert.equal(sessionKeyFrom('galaxysession="q"', 'galaxysession'), '"q"', 'exactly as sent');
  assert.equal(sessionKeyFrom('mysession=z', 'mysession'), 'z');
  for (const garbage of [';;;', '=', 'galaxysession', 'galaxysession=%E0%A4%A', '\u0000galaxysession=\uffff', 'galaxysession=a=b=c']) {
    assert.doesNotThrow(() => sessionKeyFrom(garbage, 'galaxysession'));
  }
});

test('CORS echo only with an Origin', () => {
  const h: Record<string, unknown> = {};
  addCorsEcho(h, undefined);
  assert.deepEqual(h, {});
  addCorsEcho(h, 'http://g:8080');
  assert.deepEqual(h, { 'access-control-allow-origin': 'http://g:8080', 'access-control-allow-credentials': 'true' });
});

test('--reverseProxy rewrite: only 302 to http://localhost/', () => {
  assert.equal(rewriteLocalhostRedirect(302, 'http://localhost/a?b', 8800), 'http://localhost:8800/a?b');
  assert.equal(rewriteLocalhostRedirect(301, 'http://localhost/a', 8800), undefined);
  assert.equal(rewriteLocalhostRedirect(302, 'http://localhost:9000/a', 8800), undefined);
  assert.equal(rewriteLocalhostRedirect(302, 'https://localhost/a', 8800), undefined);
  assert.equal(rewriteLocalhostRedirect(302, undefined, 8800), undefined);
});

test('RStudio header names and form content type', () => {
  assert.ok(isRStudioUrl('/galaxy/gie_proxy/rstudio/x'));
  assert.ok(!isRStudioUrl('/jupyter'));
  const h: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8', 'content-length': '3', accept: '*/*' };
  applyRStudioHeaders(h);
  assert.deepEqual(h, { accept: '*/*', 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': '3' });
  const j: Record<string, string> = { 'content-type': 'application/json' };
  applyRStudioHeaders(j);
  assert.deepEqual(j, { 'Content-Type': 'application/json' });
});

test('hop-by-hop headers are dropped, upgrade headers kept for WebSockets', () => {
  const h: Record<string, string> = { connection: 'close, x-secret', 'x-secret': '1', 'keep-alive': '1', te: 'trailers', host: 'h', cookie: 'c', accept: 'a' };
  stripHopByHop(h, false);
  assert.deepEqual(h, { host: 'h', cookie: 'c', accept: 'a' });
  const w: Record<string, string> = { connection: 'Upgrade', upgrade: 'websocket', 'proxy-connection': 'x', host: 'h' };
  stripHopByHop(w, true);
  assert.deepEqual(w, { connection: 'Upgrade', upgrade: 'websocket', host: 'h' });
});

test('route table: whole replacement, O(1) lookup, IPv6 and unchanged routes reused', () => {
  const t = new RouteTable();
  t.replace(new Map([['a', { host: '10.0.0.1', port: 1 }], ['b', { host: '[::1]', port: 2 }]]));
  const a = t.lookup('a')!;
  assert.equal(a.label, '10.0.0.1:1');
  assert.deepEqual(t.lookup('b')!.proxyTarget, { protocol: 'http:', host: '::1', hostname: '::1', port: 2 });
  assert.equal(t.lookup('b')!.label, '[::1]:2');
  t.replace(new Map([['a', { host: '10.0.0.1', port: 1 }]]));
  assert.equal(t.lookup('a'), a);
  assert.equal(t.lookup('b'), undefined);
  assert.equal(t.size, 1);
});

test('entry validation reasons', () => {
  assert.equal(invalidTargetReason('h', 80), undefined);
  assert.equal(invalidTargetReason('h', '8080'), undefined);
  assert.equal(invalidTargetReason('', 80), 'missing host');
  assert.equal(invalidTargetReason(null, 80), 'missing host');
  assert.equal(invalidTargetReason('a b', 80), 'malformed host');
  assert.equal(invalidTargetReason('h', 'x'), 'non-numeric port');
  assert.equal(invalidTargetReason('h', 0), 'port out of range');
  assert.equal(invalidTargetReason('h', 65536), 'port out of range');
  assert.equal(invalidTargetReason('h', 1.5), 'port out of range');
});

test('SQLite map: reads gxproxy2, skips bad rows with reasons, knows when nothing changed', (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'm.sqlite');
  const writer = new GalaxySqliteWriter(path);
  writer.addSession('k1', 'localhost', 9001);
  writer.exec("INSERT INTO gxproxy2 (key, host, port) VALUES ('k2', NULL, 9002), ('k3', 'h', 'abc'), ('k4', 'h', 99999)");
  const source = new SqliteSessionMap(path);
  t.after(() => source.close());
  const version = source.version();
  const snap = toSnapshot(source.read());
  assert.equal(snap.format, 'sqlite gxproxy2');
  assert.deepEqual([...snap.routes], [['k1', { host: 'localhost', port: 9001 }]]);
  assert.deepEqual(Object.fromEntries(snap.skipped), { 'missing host': 1, 'non-numeric port': 1, 'port out of range': 1 });
  assert.equal(source.version(), version, 'nothing committed: same version');
  writer.addSession('k5', 'h', 1);
  const next = source.version();
  assert.notEqual(next, version);
  assert.equal(toSnapshot(source.read()).routes.size, 2);
  assert.equal(source.version(), next);
});
