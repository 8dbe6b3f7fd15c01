import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addCorsEcho, addForwardedForSocketPeer, applyRStudioHeaders, corsPolicy, isRStudioUrl, rewriteLocalhostRedirect, stripHopByHop, stripHopByHopResponse } from '../../../src/http/headers.js';

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

test('stripHopByHopResponse: connection fields, listed fields and framing go; end-to-end fields stay', () => {
  const sent = (): Record<string, string | undefined> => ({
    connection: 'close, X-Private, content-length',
    'x-private': '1',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    'proxy-authenticate': 'Basic',
    trailer: 'x',
    upgrade: 'h2c',
    'content-length': '10',
    'set-cookie': 'a=b',
  });
  // Written to a raw socket with every key (a refused upgrade): the fields are deleted.
  const raw = sent();
  stripHopByHopResponse(raw, 'every-key');
  assert.deepEqual(raw, { 'content-length': '10', 'set-cookie': 'a=b' });
  // Copied by http-proxy, which skips undefined values: the fields are emptied, and only the end-to-end ones have a value.
  const copied = sent();
  stripHopByHopResponse(copied, 'skipping-undefined');
  assert.deepEqual(Object.keys(copied), Object.keys(sent()), 'no field deleted');
  assert.deepEqual(Object.fromEntries(Object.entries(copied).filter(([, value]) => value !== undefined)), { 'content-length': '10', 'set-cookie': 'a=b' });
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

test('--xfwd for a unix socket peer: X-Forwarded-For as it arrived, -Port/-Proto appended, -Host kept or set (as http-proxy does over TCP)', () => {
  const fromNginx: Record<string, string> = { host: 'galaxy.example.org', 'x-forwarded-for': '203.0.113.7, 10.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-port': '443' };
  addForwardedForSocketPeer(fromNginx, false);
  assert.deepEqual(fromNginx, {
    host: 'galaxy.example.org',
    'x-forwarded-for': '203.0.113.7, 10.0.0.1',
    'x-forwarded-proto': 'https,http',
    'x-forwarded-port': '443,80',
    'x-forwarded-host': 'galaxy.example.org',
  });
  const bare: Record<string, string> = { host: 'h.example:8800' };
  addForwardedForSocketPeer(bare, false);
  assert.deepEqual(bare, { host: 'h.example:8800', 'x-forwarded-port': '8800', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'h.example:8800' });
  const noHost: Record<string, string> = {};
  addForwardedForSocketPeer(noHost, false);
  assert.deepEqual(noHost, { 'x-forwarded-port': '80', 'x-forwarded-proto': 'http', 'x-forwarded-host': '' });
  const kept: Record<string, string> = { host: 'a', 'x-forwarded-host': 'front.example' };
  addForwardedForSocketPeer(kept, false);
  assert.equal(kept['x-forwarded-host'], 'front.example');
  // A WebSocket upgrade: ws, and no X-Forwarded-Host (http-proxy's ws pass sets none).
  const upgrade: Record<string, string> = { host: 'h:81' };
  addForwardedForSocketPeer(upgrade, true);
  assert.deepEqual(upgrade, { host: 'h:81', 'x-forwarded-port': '81', 'x-forwarded-proto': 'ws' });
});
