import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEFAULTS, MAX_TIMER_MS, resolveOptions } from '../../../src/cli/options.js';

test('options: defaults are the legacy ones, the result is frozen, bad values name the option', () => {
  const o = resolveOptions({ sessionsPath: '/m.sqlite' });
  assert.equal(o.ip, 'localhost');
  assert.equal(o.port, 8000);
  assert.equal(o.cookieName, 'galaxysession');
  assert.equal(o.reverseProxy, false);
  assert.equal(o.shutdownGraceMs, 5000);
  assert.ok(Object.isFrozen(o));
  assert.throws(() => resolveOptions({ sessionsPath: '/m', port: 70000 }), (e: ConfigError) => e.code === 'ERR_GIE_CONFIG' && e.option === 'port');
  assert.throws(() => resolveOptions({ sessionsPath: '/m', cookieName: 'a;b' }), /option cookie: "a;b" is not a valid cookie name/);
  assert.throws(() => resolveOptions({ sessionsPath: '' }), /option sessions/);
});

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
      (err: ConfigError) => err instanceof ConfigError && err.option === 'cors-origin' && err.value === bad,
      bad,
    );
  }
});
