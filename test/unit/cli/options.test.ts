import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, CLI_ONLY_DEFAULTS, DEFAULTS, MAX_TIMER_MS, OPTION_TABLE, resolveOptions, type ProxyOptions } from '../../../src/cli/options.js';

const sessionsPath = '/m.sqlite';

test('DEFAULTS and the CLI-only defaults come from the tables and are frozen', () => {
  assert.deepEqual(Object.keys(DEFAULTS), Object.keys(OPTION_TABLE));
  for (const [key, row] of Object.entries(OPTION_TABLE)) assert.equal(DEFAULTS[key as keyof ProxyOptions], row.default, key);
  assert.deepEqual(CLI_ONLY_DEFAULTS, { pollingInterval: undefined, check: false, checkLimit: 10 });
  assert.ok(Object.isFrozen(DEFAULTS));
  assert.ok(Object.isFrozen(CLI_ONLY_DEFAULTS));
  const o = resolveOptions({ sessionsPath });
  assert.deepEqual(o, { ...DEFAULTS, sessionsPath });
  assert.ok(Object.isFrozen(o));
});

test('resolveOptions refuses a bad value of every option, naming the option as given', () => {
  const bad: { [K in keyof ProxyOptions]: unknown[] } = {
    ip: ['', 7],
    port: [-1, 65536, 1.5, '80'],
    cookieName: ['a;b', 'bad name', ''],
    sessionsPath: ['', 3],
    reverseProxy: ['yes', 1],
    verbose: ['true'],
    pathPrefix: ['/a b', '/x?y', 7],
    forwardIP: ['', 1],
    forwardPort: [70000, 'x'],
    headerModeAllow: ['10.0.0.0/8', ['10.0.0.0/33'], ['bad host'], [1]],
    interactiveTools: ['yes'],
    shutdownGraceMs: [-1, Number.NaN, MAX_TIMER_MS + 1, 1.5],
    pollIntervalMs: [-1, Number.NaN, MAX_TIMER_MS + 1],
    reloadDebounceMs: [-1, Infinity],
    headersTimeoutMs: [-1, '30'],
    proxyTimeoutMs: [MAX_TIMER_MS + 1],
    webSocketIdleTimeoutMs: [-5],
    xfwd: [0],
    corsOrigins: ['https://a.example', ['galaxy.example.org']],
    mapThreadFrom: [-1, 0.5],
    metricsPort: [70000, -1],
    metricsIp: [''],
    pidFile: [''],
  };
  assert.deepEqual(Object.keys(bad).sort(), Object.keys(OPTION_TABLE).sort(), 'every option has a bad value here');
  for (const [key, values] of Object.entries(bad)) {
    for (const value of values) {
      assert.throws(
        () => resolveOptions({ sessionsPath, [key]: value }),
        (err: unknown) => err instanceof ConfigError && err.option === key && err.code === 'ERR_GIE_CONFIG' && err.message.startsWith(`option ${key}: `),
        `${key}=${String(value)}`,
      );
    }
  }
});

test('resolveOptions refuses a key that is not an option', () => {
  assert.throws(
    () => resolveOptions({ sessionsPath, cookie: 'galaxysession' } as unknown as ProxyOptions),
    (err: unknown) => err instanceof ConfigError && err.option === 'cookie' && /is not an option/.test(err.message),
  );
});

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
