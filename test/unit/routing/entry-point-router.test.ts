import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { EntryPointTable, type EntryPointRow } from '../../../src/routing/entry-point-table.js';
import {
  EntryPointRouter,
  isUnderPrefix,
  redactEntryPointPath,
  normalizePathPrefix,
  splitEntryPointHost,
  splitEntryPointPath,
  targetFromHeaders,
  type EntryPointRouterOptions,
} from '../../../src/routing/entry-point-router.js';
import { TargetAllowList } from '../../../src/routing/target-allow-list.js';
import { ANSWERS } from '../../../src/http/answers.js';
import { isRefusal, type Forward, type RouteResult } from '../../../src/routing/router.js';

const PREFIX = '/interactivetool/ep';
// Galaxy ≥ 23.1 keys and tokens: lowercase alphanumerics (INTERACTIVE-TOOLS.md §4.2).
const K = '24q1dbzrknq1v';
const T = '1a1p13jnahscj';

function row(over: Partial<EntryPointRow> = {}): EntryPointRow {
  return {
    key: K,
    keyType: 'interactivetoolentrypoint',
    token: T,
    host: '10.0.0.5',
    port: 8888,
    requiresPathInUrl: false,
    requiresPathInHeaderNamed: undefined,
    ...over,
  };
}

function routerFor(rows: EntryPointRow[], over: Partial<EntryPointRouterOptions> = {}): (url: string, headers?: IncomingHttpHeaders) => RouteResult {
  const table = new EntryPointTable();
  table.replace(rows);
  const router = new EntryPointRouter(
    { pathPrefix: PREFIX, forwardIP: undefined, forwardPort: undefined, headerMode: false, allow: undefined, ...over },
    (key) => table.lookup(key),
  );
  return (url, headers = { host: 'galaxy.example.org' }) => router.route({ url, headers } as unknown as IncomingMessage);
}

function routed(d: RouteResult): Forward {
  assert.ok(!isRefusal(d), `expected a route, got ${JSON.stringify(d)}`);
  return d;
}

function refused(d: RouteResult, reason: string): void {
  assert.ok(isRefusal(d), `expected a refusal, got ${JSON.stringify(d)}`);
  assert.equal(d.refusal, reason);
}

/** What the container would get: the request as the server changes it for the route. */
function forwarded(d: RouteResult, url: string, headers: IncomingHttpHeaders): { url: string; headers: IncomingHttpHeaders } {
  const route = routed(d);
  const req = { url: route.url ?? url, headers: { ...headers } };
  route.rewriteHeaders?.(req.headers);
  return req;
}

/** The request target the container gets for a request to `url`. */
function urlFor(r: (url: string, headers?: IncomingHttpHeaders) => RouteResult, url: string, headers?: IncomingHttpHeaders): string {
  return forwarded(r(url, headers), url, {}).url;
}

/** The headers the route sets, in order: what it makes of a request that has none. */
function setHeaders(d: RouteResult): [string, unknown][] {
  return Object.entries(forwarded(d, '/', {}).headers);
}

test('§5.2 path routing: the container gets the path after the token, the query kept (requires_path_in_url false, null or absent)', () => {
  const r = routerFor([row()]);
  const cases: [string, string][] = [
    [`${PREFIX}/${K}/${T}/a/b?c=d`, '/a/b?c=d'],
    [`${PREFIX}/${K}/${T}/`, '/'],
    [`${PREFIX}/${K}/${T}`, '/'],
    [`${PREFIX}/${K}/${T}?x=1`, '/?x=1'],
    [`${PREFIX}/${K}/${T}/?x=1`, '/?x=1'],
    [`${PREFIX}/${K}/${T}/api/kernels?token=a/b`, '/api/kernels?token=a/b'],
  ];
  for (const [url, expected] of cases) {
    const d = routed(r(url));
    assert.equal(d.entryPoint, K);
    assert.equal(urlFor(r, url), expected, url);
    assert.equal(d.route.label, '10.0.0.5:8888');
  }
});

test('§5.2 path routing with requires_path_in_url true: the request target reaches the container unchanged', () => {
  const r = routerFor([row({ requiresPathInUrl: true })]);
  for (const url of [`${PREFIX}/${K}/${T}/a?c=d`, `${PREFIX}/${K}/${T}`, `${PREFIX}/${K}/${T}?x=1`, `${PREFIX}/${K}/${T}//a%2Fb`]) {
    assert.equal(urlFor(r, url), url);
  }
});

test('§7.9 a query right after the token does not break the token', () => {
  const r = routerFor([row()]);
  assert.equal(routed(r(`${PREFIX}/${K}/${T}?x=1`)).entryPoint, K);
  assert.equal(urlFor(r, `${PREFIX}/${K}/${T}?`), '/?');
});

test('§7.10 `//` and percent-encodings reach the container byte for byte', () => {
  const r = routerFor([row()]);
  const cases: [string, string][] = [
    [`${PREFIX}/${K}/${T}//a//b/`, '//a//b/'],
    [`${PREFIX}/${K}/${T}/a%2Fb%20c;p=1/~u:x@y?q=%2F%3D&r=//`, '/a%2Fb%20c;p=1/~u:x@y?q=%2F%3D&r=//'],
    [`${PREFIX}/${K}/${T}/%E2%9C%93`, '/%E2%9C%93'],
  ];
  for (const [url, expected] of cases) assert.equal(urlFor(r, url), expected);
  // Host routing does not touch the request target at all.
  const host = { host: `${K}-${T}.ep.interactivetool.galaxy.example.org` };
  assert.equal(urlFor(routerFor([row()], { pathPrefix: undefined }), '//a%2F//b?c=//', host), '//a%2F//b?c=//');
});

test('§5.2 the prefix has a segment boundary: /interactivetool/epX/… is not path-routed', () => {
  assert.equal(isUnderPrefix(`${PREFIX}X/${K}/${T}/`, PREFIX), false);
  assert.equal(isUnderPrefix(`${PREFIX}/${K}`, PREFIX), true);
  assert.equal(isUnderPrefix(PREFIX, PREFIX), true);
  assert.equal(isUnderPrefix(`${PREFIX}?a`, PREFIX), true);
  const r = routerFor([row()]);
  // Not under the prefix: host routing, which finds no key in this Host,
  // and routes by a Host that names one, the request target unchanged.
  refused(r(`${PREFIX}X/${K}/${T}/`), 'unknown-entry-point');
  assert.equal(routed(r(`${PREFIX}X/${K}/${T}/`, { host: `${K}-${T}.example` })).url, undefined);
  // Under the prefix with nothing after it: path-routed, no key.
  refused(r(PREFIX), 'unknown-entry-point');
  refused(r(`${PREFIX}/`), 'unknown-entry-point');
  refused(r(`${PREFIX}?x`), 'unknown-entry-point');
  refused(r(`${PREFIX}//${K}/${T}/`), 'unknown-entry-point');
});

test('§5.1 path first: the prefix wins even when the Host names another entry point', () => {
  const other = row({ key: 'otherkey1', token: 'othertoken1', host: '10.0.0.9' });
  const r = routerFor([row(), other]);
  const d = routed(r(`${PREFIX}/${K}/${T}/x`, { host: `otherkey1-othertoken1.ep.interactivetool.example.org` }));
  assert.equal(d.url, '/x', 'the path was routed (its prefix, key and token stripped)');
  assert.equal(d.entryPoint, K);
  // A path under the prefix with a bad token is refused, not routed by the Host.
  refused(r(`${PREFIX}/${K}/nope/x`, { host: `otherkey1-othertoken1.ep.interactivetool.example.org` }), 'wrong-token');
});

test('§5.2 the path header: <prefix>/<key>/<token>, replacing a client header of that name in any case (§7.8)', () => {
  const r = routerFor([row({ requiresPathInHeaderNamed: 'X-My-Header' })]);
  const url = `${PREFIX}/${K}/${T}/a?b=c`;
  const d = routed(r(url));
  assert.deepEqual(setHeaders(d), [['X-My-Header', `${PREFIX}/${K}/${T}`]]);
  for (const spoof of ['x-my-header', 'X-MY-HEADER', 'X-My-Header']) {
    const got = forwarded(d, url, { host: 'g', [spoof]: '/evil' });
    const names = Object.keys(got.headers).filter((n) => n.toLowerCase() === 'x-my-header');
    assert.deepEqual(names, ['X-My-Header'], spoof);
    assert.equal(got.headers['X-My-Header' as 'host'], `${PREFIX}/${K}/${T}`);
  }
  // The header with the prefix kept, too.
  const keep = routerFor([row({ requiresPathInUrl: true, requiresPathInHeaderNamed: 'X-My-Header' })]);
  const k = routed(keep(url));
  assert.equal(forwarded(k, url, {}).url, url);
  assert.deepEqual(setHeaders(k), [['X-My-Header', `${PREFIX}/${K}/${T}`]]);
  // Only for the matching token: a wrong token sets nothing and routes nowhere.
  refused(r(`${PREFIX}/${K}/wrong/a`), 'wrong-token');
  // Host routing never sets it.
  assert.deepEqual(setHeaders(routed(routerFor([row({ requiresPathInHeaderNamed: 'X-My-Header' })])('/', { host: `${K}-${T}.x` }))), []);
});

test('--proxyPathPrefix is normalised: trailing slashes, missing leading slash, `/` for every path', () => {
  assert.equal(normalizePathPrefix(undefined), undefined);
  assert.equal(normalizePathPrefix(''), undefined);
  assert.equal(normalizePathPrefix('/interactivetool/ep'), PREFIX);
  assert.equal(normalizePathPrefix('/interactivetool/ep/'), PREFIX);
  assert.equal(normalizePathPrefix('interactivetool/ep'), PREFIX);
  assert.equal(normalizePathPrefix('/foo/bar/ep'), '/foo/bar/ep');
  assert.equal(normalizePathPrefix('/'), '');
  const all = routerFor([row({ requiresPathInHeaderNamed: 'X-P' })], { pathPrefix: '' });
  const d = routed(all(`/${K}/${T}/x`));
  assert.equal(d.url, '/x');
  assert.deepEqual(setHeaders(d), [['X-P', `/${K}/${T}`]]);
});

test('§5.3 host routing: key up to the first -, token up to the first ., the rest and the port ignored', () => {
  const r = routerFor([row()], { pathPrefix: undefined });
  for (const host of [
    `${K}-${T}.ep.interactivetool.usegalaxy.example:4002`,
    `${K}-${T}.interactivetoolentrypoint.interactivetool.localhost`,
    `${K}-${T}.anything`,
    `${K}-${T}.`,
    `${K}-${T}.a-b.c:1`,
  ]) {
    const d = routed(r('/x?y', { host }));
    assert.equal(d.entryPoint, K);
    assert.equal(urlFor(r, '/x?y', { host }), '/x?y');
  }
  assert.deepEqual(splitEntryPointHost(`${K}-${T}.x-y.z`), { key: K, token: T });
  assert.deepEqual(splitEntryPointHost('a-b-c.d'), { key: 'a', token: 'b-c' });
});

test('§5.3 host edge cases: no -, no ., a . before the -, empty key, case kept, IPv6 and plain names', () => {
  const r = routerFor([row()], { pathPrefix: undefined });
  for (const host of [
    `${K}${T}.example.org`, // no -
    `${K}-${T}`, // no .
    `${K}-${T}:4002`, // no . (port only)
    `x.${K}-${T}.example`, // . before -
    `-${T}.example`, // empty key
    `${K.toUpperCase()}-${T}.example`, // exact case, as gx-it-proxy
    '[::1]:8000',
    'localhost:4002',
    'galaxy.example.org',
  ]) {
    refused(r('/', { host }), 'unknown-entry-point');
  }
  refused(r('/', { host: `${K}-${T.toUpperCase()}.example` }), 'wrong-token');
  refused(r('/', { host: `${K}-.example` }), 'wrong-token');
});

test('§7.5 no Host header (not path-routed): refused as a bad request, never thrown', () => {
  const r = routerFor([row()]);
  refused(r('/', {}), 'no-host');
  refused(r('/x', { host: '' }), 'no-host');
  assert.equal(ANSWERS['no-host'].status, 400);
  // Path routing needs no Host.
  assert.equal(routed(r(`${PREFIX}/${K}/${T}/`, {})).url, '/');
});

test('§7.1 unknown key and wrong token are refusals (404), never a default target', () => {
  const r = routerFor([row()]);
  refused(r(`${PREFIX}/unknownkey/${T}/`), 'unknown-entry-point');
  refused(r(`${PREFIX}/${K}/${T}x/`), 'wrong-token');
  refused(r(`${PREFIX}/${K}/${T.slice(0, -1)}/`), 'wrong-token');
  refused(r(`${PREFIX}/${K}/`), 'wrong-token');
  refused(r(`${PREFIX}/${K}`), 'wrong-token');
  assert.equal(ANSWERS['unknown-entry-point'].status, 404);
  assert.equal(ANSWERS['wrong-token'].status, 404);
  // The refusal names the key for the debug log, never the token.
  const d = r(`${PREFIX}/${K}/secretguess/`);
  assert.equal(isRefusal(d) ? d.entryPoint : undefined, K);
  assert.ok(!JSON.stringify(d).includes('secretguess'));
  // An empty map routes nothing.
  refused(routerFor([])(`${PREFIX}/${K}/${T}/`), 'unknown-entry-point');
});

test('§5.4 key_type is part of the identity: rows differing only in key_type do not collide', () => {
  const a = row({ keyType: 'interactivetoolentrypoint', token: 'tokena', host: '10.0.0.1' });
  const b = row({ keyType: 'otherkind', token: 'tokenb', host: '10.0.0.2' });
  const table = new EntryPointTable();
  table.replace([a, b]);
  assert.equal(table.size, 2);
  assert.equal(table.lookup(K)?.length, 2);
  const r = routerFor([a, b]);
  assert.equal(routed(r(`${PREFIX}/${K}/tokena/`)).route.host, '10.0.0.1');
  assert.equal(routed(r(`${PREFIX}/${K}/tokenb/`)).route.host, '10.0.0.2');
  refused(r(`${PREFIX}/${K}/tokenc/`), 'wrong-token');
  // Removing one key type leaves the other.
  table.apply([], [[K, 'otherkind']]);
  assert.equal(table.size, 1);
  assert.equal(table.lookup(K)?.[0]?.token, 'tokena');
  table.apply([], [[K, 'interactivetoolentrypoint']]);
  assert.equal(table.size, 0);
  assert.equal(table.lookup(K), undefined);
});

test('client-sent x-interactive-tool-* headers never reach a container in map mode', () => {
  const r = routerFor([row()]);
  const url = `${PREFIX}/${K}/${T}/`;
  const got = forwarded(r(url), url, { host: 'g', 'x-interactive-tool-host': 'evil', 'x-interactive-tool-port': '1', 'x-interactive-tool-other': 'z', 'x-other': 'kept' });
  assert.deepEqual(got.headers, { host: 'g', 'x-other': 'kept' });
});

test('§5.6 forward mode: the row host/port in x-interactive-tool-host/-port, the connection to the forward address', () => {
  const both = routerFor([row()], { forwardIP: '192.168.1.7', forwardPort: 4003 });
  const url = `${PREFIX}/${K}/${T}/a?b`;
  const d = routed(both(url));
  assert.equal(d.route.label, '192.168.1.7:4003');
  assert.equal(d.url, '/a?b', 'stripping happens as usual');
  const got = forwarded(d, url, { host: 'g', 'x-interactive-tool-host': 'evil', 'X-Interactive-Tool-Port': '1' });
  assert.deepEqual(got.headers, { host: 'g', 'x-interactive-tool-host': '10.0.0.5', 'x-interactive-tool-port': '8888' });
  // Only the IP: the row's port is kept and no port header is sent.
  const ipOnly = routed(routerFor([row()], { forwardIP: '192.168.1.7' })(url));
  assert.equal(ipOnly.route.label, '192.168.1.7:8888');
  assert.deepEqual(setHeaders(ipOnly), [['x-interactive-tool-host', '10.0.0.5']]);
  // Only the port.
  const portOnly = routed(routerFor([row()], { forwardPort: 4003 })(url));
  assert.equal(portOnly.route.label, '10.0.0.5:4003');
  assert.deepEqual(setHeaders(portOnly), [['x-interactive-tool-port', '8888']]);
  // With the path header too.
  const withHeader = routed(routerFor([row({ requiresPathInHeaderNamed: 'X-P' })], { forwardIP: '192.168.1.7', forwardPort: 4003 })(url));
  assert.deepEqual(setHeaders(withHeader).map(([n]) => n), ['X-P', 'x-interactive-tool-host', 'x-interactive-tool-port']);
});

test('§7.3 forward mode with an unknown key or a wrong token: a refusal, not a hang or a crash', () => {
  const r = routerFor([row()], { forwardIP: '192.168.1.7', forwardPort: 4003 });
  refused(r(`${PREFIX}/nokey/${T}/`), 'unknown-entry-point');
  refused(r('/', { host: `${K}-wrong.example` }), 'wrong-token');
  refused(r('/', {}), 'no-host');
});

test('§5.5 header mode: the target from x-interactive-tool-host and -port, or host:port', () => {
  const r = routerFor([], { headerMode: true });
  const cases: [IncomingHttpHeaders, string][] = [
    [{ 'x-interactive-tool-host': '10.1.2.3', 'x-interactive-tool-port': '8888' }, '10.1.2.3:8888'],
    [{ 'x-interactive-tool-host': '10.1.2.3:8888' }, '10.1.2.3:8888'],
    [{ 'x-interactive-tool-host': '10.1.2.3:8888', 'x-interactive-tool-port': '' }, '10.1.2.3:8888'],
    [{ 'x-interactive-tool-host': 'node7.cluster', 'x-interactive-tool-port': '80' }, 'node7.cluster:80'],
    [{ 'x-interactive-tool-host': '[::1]:8080' }, '[::1]:8080'],
    [{ 'x-interactive-tool-host': '::1', 'x-interactive-tool-port': '8080' }, '[::1]:8080'],
    [{ 'x-interactive-tool-host': '[fd00::5]', 'x-interactive-tool-port': '8080' }, '[fd00::5]:8080'],
  ];
  for (const [headers, label] of cases) {
    const d = routed(r('/interactivetool/ep/a/b/c?d', { host: 'remote', ...headers }));
    assert.equal(d.entryPoint, undefined, 'no entry point: the target came from the headers');
    assert.equal(d.route.label, label, JSON.stringify(headers));
    assert.equal(d.url, undefined, 'header mode passes the target on as it came');
    const got = forwarded(d, '/x', { host: 'remote', ...headers });
    assert.deepEqual(got.headers, { host: 'remote' }, 'the routing headers are consumed');
  }
});

test('§7.4 header mode without or with unusable target headers: 400, never thrown', () => {
  const r = routerFor([], { headerMode: true });
  refused(r('/', { host: 'x' }), 'no-target-header');
  refused(r('/', { 'x-interactive-tool-host': '' }), 'no-target-header');
  refused(r('/', {}), 'no-target-header');
  for (const headers of [
    { 'x-interactive-tool-host': '10.1.2.3' }, // no port anywhere
    { 'x-interactive-tool-host': '::1' },
    { 'x-interactive-tool-host': '10.1.2.3:' },
    { 'x-interactive-tool-host': '10.1.2.3:0' },
    { 'x-interactive-tool-host': '10.1.2.3:65536' },
    { 'x-interactive-tool-host': '10.1.2.3:80x' },
    { 'x-interactive-tool-host': '10.1.2.3', 'x-interactive-tool-port': 'http' },
    { 'x-interactive-tool-host': '10.1.2.3:80', 'x-interactive-tool-port': '81' }, // a port in both
    { 'x-interactive-tool-host': 'a, b', 'x-interactive-tool-port': '80' }, // sent twice
    { 'x-interactive-tool-host': 'bad host', 'x-interactive-tool-port': '80' },
    { 'x-interactive-tool-host': 'user@host', 'x-interactive-tool-port': '80' },
    { 'x-interactive-tool-host': 'host/path', 'x-interactive-tool-port': '80' },
    { 'x-interactive-tool-host': '[notv6]:80' },
    { 'x-interactive-tool-host': ':80' },
  ] as IncomingHttpHeaders[]) {
    refused(r('/', headers), 'bad-target-header');
  }
  assert.equal(ANSWERS['no-target-header'].status, 400);
  assert.equal(ANSWERS['bad-target-header'].status, 400);
  assert.equal(targetFromHeaders({ 'x-interactive-tool-host': ['a', 'b'] }), 'bad-target-header');
});

test('header mode with --header-mode-allow: only listed targets, the rest refused (404)', () => {
  const allow = TargetAllowList.parse(['10.0.0.0/8', '192.168.1.9:8888', 'node7.cluster', '[fd00::]/8', 'db.local:5000']);
  const r = routerFor([], { headerMode: true, allow });
  const ok = [
    '10.255.0.1:1',
    '192.168.1.9:8888',
    'node7.cluster:22',
    'NODE7.Cluster:22',
    '[fd00::1]:80',
    'db.local:5000',
  ];
  const no = ['11.0.0.1:80', '192.168.1.9:8889', 'node8.cluster:22', '[fe80::1]:80', 'db.local:5001', 'localhost:80', '2130706433:80', '127.1:80'];
  for (const target of ok) assert.ok(!isRefusal(r('/', { 'x-interactive-tool-host': target })), target);
  for (const target of no) refused(r('/', { 'x-interactive-tool-host': target }), 'target-not-allowed');
  assert.equal(ANSWERS['target-not-allowed'].status, 404);
});

test('header mode chained on: with --forwardIP/--forwardPort the header target is passed on in the headers', () => {
  const r = routerFor([], { headerMode: true, forwardIP: '10.9.9.9', forwardPort: 4004 });
  const d = routed(r('/x', { 'x-interactive-tool-host': '10.1.2.3:8888' }));
  assert.equal(d.route.label, '10.9.9.9:4004');
  assert.deepEqual(setHeaders(d), [
    ['x-interactive-tool-host', '10.1.2.3'],
    ['x-interactive-tool-port', '8888'],
  ]);
});

test('no client input makes the router throw', () => {
  const routers = [routerFor([row()]), routerFor([row()], { forwardIP: '1.2.3.4' }), routerFor([], { headerMode: true }), routerFor([row()], { pathPrefix: '' })];
  const urls = ['', '/', '*', '?', PREFIX, `${PREFIX}/`, `${PREFIX}/?`, `${PREFIX}//`, `${PREFIX}/${K}/${T}`, '/\u0000', `${PREFIX}/%ZZ/%/`, 'http://x/y'];
  const hosts = [undefined, '', '-', '.', '-.', '.-', 'a-', 'a-.', '[::1]', '\u00ff-\u00ff.x', `${K}-${T}.x`];
  for (const route of routers) {
    for (const url of urls) {
      for (const host of hosts) {
        for (const extra of [{}, { 'x-interactive-tool-host': ':' }, { 'x-interactive-tool-host': '[', 'x-interactive-tool-port': '-1' }]) {
          const headers: IncomingHttpHeaders = { ...extra };
          if (host !== undefined) headers.host = host;
          assert.doesNotThrow(() => route(url, headers));
        }
      }
    }
  }
  assert.deepEqual(splitEntryPointPath('/p', 2), { key: '', token: '', rest: '/' });
});

test('log lines never carry the token: the token segment of a path under the prefix is replaced by *', () => {
  assert.equal(redactEntryPointPath(`${PREFIX}/${K}/${T}/a?b=${T}`, PREFIX), `${PREFIX}/${K}/*/a?b=${T}`);
  assert.equal(redactEntryPointPath(`${PREFIX}/${K}/${T}`, PREFIX), `${PREFIX}/${K}/*`);
  assert.equal(redactEntryPointPath(`${PREFIX}/${K}/${T}?x`, PREFIX), `${PREFIX}/${K}/*?x`);
  assert.equal(redactEntryPointPath(`${PREFIX}/${K}`, PREFIX), `${PREFIX}/${K}`);
  assert.equal(redactEntryPointPath(`${PREFIX}/${K}/`, PREFIX), `${PREFIX}/${K}/`);
  assert.equal(redactEntryPointPath('/other/x', PREFIX), '/other/x');
  assert.equal(redactEntryPointPath(`${PREFIX}/${K}/${T}/`, undefined), `${PREFIX}/${K}/${T}/`);
});

test('EntryPointRouter behind the router seam: route, credential (the token, logged by tag only), entry point key, redacted log path, header rewrite', () => {
  const table = new EntryPointTable();
  table.replace([row({ requiresPathInHeaderNamed: 'X-P' })]);
  const options = { pathPrefix: PREFIX, forwardIP: undefined, forwardPort: undefined, headerMode: false, allow: undefined };
  const router = new EntryPointRouter(options, (k) => table.lookup(k));
  assert.equal(router.description, `interactive tools: path ${PREFIX}, then host`);
  const req = (url: string, headers: IncomingHttpHeaders = {}) => ({ url, headers }) as unknown as IncomingMessage;
  const routedResult = router.route(req(`${PREFIX}/${K}/${T}/a?b`, { 'x-p': 'spoof', 'x-interactive-tool-host': 'evil' }));
  assert.ok(!isRefusal(routedResult));
  assert.equal(routedResult.route.label, '10.0.0.5:8888');
  assert.equal(routedResult.credential, T);
  assert.equal(routedResult.entryPoint, K);
  assert.equal(routedResult.logPath, `${PREFIX}/${K}/*/a?b`);
  assert.equal(routedResult.url, '/a?b');
  const headers: IncomingHttpHeaders = { 'x-p': 'spoof', 'x-interactive-tool-host': 'evil', host: 'h' };
  routedResult.rewriteHeaders?.(headers);
  assert.deepEqual(headers, { host: 'h', 'X-P': `${PREFIX}/${K}/${T}` });
  const byHost = router.route(req('/x', { host: `${K}-${T}.example` }));
  assert.ok(!isRefusal(byHost));
  assert.equal(byHost.url, undefined, 'the request target is unchanged');
  const refusedResult = router.route(req(`${PREFIX}/${K}/guess/`));
  assert.ok(isRefusal(refusedResult));
  assert.equal(refusedResult.refusal, 'wrong-token');
  assert.equal(refusedResult.credential, undefined, 'a wrong token is not kept');
  assert.equal(refusedResult.logPath, `${PREFIX}/${K}/*/`);
  // Without --verbose nothing is logged per request, so no log path is worked out.
  const quiet = new EntryPointRouter({ ...options, logPaths: false }, (k) => table.lookup(k));
  assert.equal(quiet.route(req(`${PREFIX}/${K}/${T}/`)).logPath, undefined);
  assert.match(new EntryPointRouter({ ...options, headerMode: true }, () => undefined).description, /^interactive tools: header mode \(open relay\)$/);
});
