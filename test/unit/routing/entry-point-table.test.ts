import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { EntryPointTable, matchToken, tokenMatches, type EntryPointRow } from '../../../src/routing/entry-point-table.js';
import { reportInSlices, toRoute } from '../../../src/routing/route-table.js';
import { EntryPointRouter } from '../../../src/routing/entry-point-router.js';
import { isRefusal } from '../../../src/routing/router.js';

const PREFIX = '/interactivetool/ep';
const K = '24q1dbzrknq1v';
const T = '1a1p13jnahscj';

/** One turn of the event loop (reportInSlices' slices run in later turns). */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function row(over: Partial<EntryPointRow> = {}): EntryPointRow {
  return { key: K, keyType: 'interactivetoolentrypoint', token: T, host: '10.0.0.5', port: 8888, requiresPathInUrl: false, requiresPathInHeaderNamed: undefined, ...over };
}

/** What http-proxy reads of a route's target (the route also carries its activity, see routing/activity.ts). */
function targetOf(route: { proxyTarget: { protocol: string; host: string; hostname: string; port: number } }): object {
  const { protocol, host, hostname, port } = route.proxyTarget;
  return { protocol, host, hostname, port };
}

test('entry-point table: replace and apply keep one entry per (key, key_type), the later row wins, unchanged entries are reused', () => {
  const table = new EntryPointTable();
  table.replace([row(), row({ port: 9999 })]);
  assert.equal(table.size, 1);
  assert.equal(table.lookup(K)?.[0]?.port, 9999);
  const before = table.lookup(K)?.[0];
  table.replace([row({ port: 9999 }), row({ key: 'k2', token: 't2' })]);
  assert.equal(table.lookup(K)?.[0], before, 'the same object for an unchanged row');
  assert.equal(table.size, 2);
  table.apply([row({ key: 'k2', token: 't3' }), row({ key: 'k3', token: 't3' })], [[K, 'interactivetoolentrypoint'], ['nope', 'x']]);
  assert.equal(table.size, 2);
  assert.equal(table.lookup('k2')?.[0]?.token, 't3');
  assert.equal(table.lookup(K), undefined);
  assert.deepEqual([...table.entries()].map((e) => e.key).sort(), ['k2', 'k3']);
  // A new token takes effect at once; the old one stops working.
  const router = new EntryPointRouter({ pathPrefix: PREFIX, forwardIP: undefined, forwardPort: undefined, headerMode: false, allow: undefined }, (k) => table.lookup(k));
  const r = (url: string) => router.route({ url, headers: {} } as unknown as IncomingMessage);
  assert.equal(isRefusal(r(`${PREFIX}/k2/t3/`)), false);
  assert.equal(isRefusal(r(`${PREFIX}/k2/t2/`)), true);
});

test('token compare: equal only for the same bytes; different lengths never match', () => {
  const t = Buffer.from(T);
  assert.equal(tokenMatches(t, Buffer.from(T)), true);
  assert.equal(tokenMatches(t, Buffer.from(T.slice(0, -1))), false);
  assert.equal(tokenMatches(t, Buffer.from(`${T}x`)), false);
  assert.equal(tokenMatches(t, Buffer.from(T.toUpperCase())), false);
  assert.equal(tokenMatches(t, Buffer.alloc(0)), false);
  assert.equal(tokenMatches(Buffer.alloc(0), Buffer.alloc(0)), true);
  const table = new EntryPointTable();
  table.replace([row(), row({ keyType: 'b', token: 'other' })]);
  assert.equal(matchToken(table.lookup(K), T)?.keyType, 'interactivetoolentrypoint');
  assert.equal(matchToken(table.lookup(K), 'other')?.keyType, 'b');
  assert.equal(matchToken(table.lookup(K), 'none'), undefined);
  assert.equal(matchToken(undefined, T), undefined);
  assert.equal(matchToken(table.lookup(K), '\u00e9'), undefined, 'non-ASCII is compared as bytes');
});

test('targets: names, IPv4, IPv6 with or without brackets', () => {
  const route = toRoute({ host: 'node7', port: 80 });
  assert.deepEqual(targetOf(route), { protocol: 'http:', host: 'node7', hostname: 'node7', port: 80 });
  assert.deepEqual([route.host, route.port, route.label], ['node7', 80, 'node7:80']);
  assert.deepEqual(targetOf(toRoute({ host: '[::1]', port: 80 })), { protocol: 'http:', host: '::1', hostname: '::1', port: 80 });
  assert.equal(toRoute({ host: '[::1]', port: 80 }).label, '[::1]:80');
  assert.equal(toRoute({ host: '::1', port: 80 }).host, '::1');
  assert.equal(toRoute({ host: '10.0.0.1', port: 1 }).label, '10.0.0.1:1');
});

test('onRemoved hears each entry point that leaves, by apply at once or by a whole replacement after it, and a token that changed; nothing else', async () => {
  const table = new EntryPointTable();
  const gone: string[] = [];
  table.onRemoved = (entry) => gone.push(`${entry.key}/${entry.token}`);
  table.replace([row({ key: 'a', token: 'ta' }), row({ key: 'b', token: 'tb' }), row({ key: 'c', token: 'tc' })]);
  await turn();
  assert.deepEqual(gone, []);
  table.apply([row({ key: 'b', token: 'tb2' }), row({ key: 'c', token: 'tc', port: 1 })], [['a', 'interactivetoolentrypoint'], ['nope', 'interactivetoolentrypoint']]);
  assert.deepEqual(gone, ['a/ta', 'b/tb'], 'a removed, b got a new token; c only moved');
  gone.length = 0;
  table.replace([row({ key: 'c', token: 'tc', port: 2 }), row({ key: 'd', token: 'td' })]);
  assert.deepEqual(gone, [], 'the replacement itself is one swap');
  await turn();
  assert.deepEqual(gone, ['b/tb2']);
  gone.length = 0;
  table.replace([row({ key: 'c', token: 'tc2' })]);
  await turn();
  assert.deepEqual(gone.sort(), ['c/tc', 'd/td']);
});

test('reportInSlices goes through a large replaced table a slice per turn', async () => {
  const before = new Map(Array.from({ length: 5000 }, (_, i) => [i, i] as const));
  const seen: number[] = [];
  reportInSlices(before, (key) => key % 1000 === 0, (key) => seen.push(key));
  assert.deepEqual(seen, []);
  await turn();
  assert.ok(seen.length > 0 && seen.length < 5, 'one slice in the first turn');
  for (let i = 0; i < 5; i++) await turn();
  assert.deepEqual(seen, [0, 1000, 2000, 3000, 4000]);
});
