import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUsableHost, TargetAllowList } from '../../../src/routing/target-allow-list.js';

test('--header-mode-allow items: every accepted form, and the ones refused with the reason', () => {
  const cases: [string, string, number, boolean][] = [
    ['10.0.0.0/8', '10.1.1.1', 5, true],
    ['10.0.0.0/8:8888', '10.1.1.1', 8888, true],
    ['10.0.0.0/8:8888', '10.1.1.1', 8889, false],
    ['10.1.2.3', '10.1.2.3', 1, true],
    ['10.1.2.3', '10.1.2.4', 1, false],
    ['::1', '::1', 80, true],
    ['[::1]:8080', '::1', 8080, true],
    ['[::1]:8080', '::1', 8081, false],
    ['[fd00::]/8', 'fd12::1', 1, true],
    ['[fd00::/8]:80', 'fd12::1', 80, true],
    ['[fd00::]/8:80', 'fd12::1', 81, false],
    ['fd00::/8', 'fd12::1', 1, true],
    ['0.0.0.0/0', '8.8.8.8', 1, true],
    ['0.0.0.0/0', '::1', 1, false],
    ['node7.cluster.', 'node7.cluster', 1, true],
    ['node7', 'node7.cluster', 1, false],
    ['localhost', '127.0.0.1', 1, false],
  ];
  for (const [item, host, port, allowed] of cases) assert.equal(TargetAllowList.parse([item]).allows(host, port), allowed, `${item} ${host} ${port}`);
  for (const [item, reason] of [
    ['10.0.0.0/33', /prefix length/],
    ['[::1', /without \]/],
    ['[::1]x', /not \/bits or :port/],
    ['[nope]:80', /no IPv6/],
    ['host:0', /port/],
    ['host:99999', /port/],
    ['bad host', /not an IP address/],
    ['name/8', /not an IP address/],
    ['', /not an IP address/],
  ] as const) {
    assert.throws(() => TargetAllowList.parse([item]), (e: Error & { code?: string }) => e.code === 'ERR_GIE_ALLOW_LIST' && reason.test(e.message), item);
  }
});

test('usable hosts: IP literals without brackets and DNS-style names', () => {
  for (const h of ['10.0.0.1', '::1', 'fd00::5', 'node7', 'node-7.cluster.example', 'a_b.local', 'x.']) assert.equal(isUsableHost(h), true, h);
  for (const h of ['', '[::1]', 'a b', 'a/b', 'a@b', 'a:1', '-a', 'a..b', 'a'.repeat(254)]) assert.equal(isUsableHost(h), false, h);
});
