import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteTable } from '../../../src/routing/route-table.js';

/** What http-proxy reads of a route's target (the route also carries its activity, see routing/activity.ts). */
function targetOf(route: { proxyTarget: { protocol: string; host: string; hostname: string; port: number } }): object {
  const { protocol, host, hostname, port } = route.proxyTarget;
  return { protocol, host, hostname, port };
}

test('route table: whole replacement, O(1) lookup, IPv6 and unchanged routes reused', () => {
  const t = new RouteTable();
  t.replace(new Map([['a', { host: '10.0.0.1', port: 1 }], ['b', { host: '[::1]', port: 2 }]]));
  const a = t.lookup('a')!;
  assert.equal(a.label, '10.0.0.1:1');
  assert.deepEqual(targetOf(t.lookup('b')!), { protocol: 'http:', host: '::1', hostname: '::1', port: 2 });
  assert.equal(t.lookup('b')!.label, '[::1]:2');
  t.replace(new Map([['a', { host: '10.0.0.1', port: 1 }]]));
  assert.equal(t.lookup('a'), a);
  assert.equal(t.lookup('b'), undefined);
  assert.equal(t.size, 1);
});

test('onRemoved hears each session that leaves, by apply at once or by a whole replacement after it; nothing else', async () => {
  const table = new RouteTable();
  const gone: string[] = [];
  table.onRemoved = (key) => gone.push(key);
  table.replace(new Map([['a', { host: 'h', port: 1 }], ['b', { host: 'h', port: 2 }], ['c', { host: 'h', port: 3 }]]));
  table.apply(new Map([['c', { host: 'h', port: 4 }]]), ['a', 'nope']);
  assert.deepEqual(gone, ['a']);
  table.replace(new Map([['c', { host: 'h', port: 5 }]]));
  assert.deepEqual(gone, ['a'], 'the replacement itself is one swap');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(gone, ['a', 'b']);
});
