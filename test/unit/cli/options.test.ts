import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLI_ONLY_DEFAULTS,
  ConfigError,
  DEFAULTS,
  MAX_TIMER_MS,
  OPTION_TABLE,
  resolveOptions,
  type ProxyOptions,
} from '../../../src/options.js';




const sessionsPath = '/m.sqlite';

test('DEFAULTS and the CLI-only defaults come from the tables and are frozen', () => {
  assert.deepEqual(Object.keys(DEFAULTS), Object.keys(OPTION_TABLE));
  for (const [key, row] of Object.entries(OPTION_TABLE)) assert.equal(DEFAULTS[key as keyof ProxyOptions], row.default, key);
  assert.deepEqual(CLI_ONLY_DEFAULTS, { pollingInterval: undefined, check: false, checkLimit: 10, installTrigger: false });
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
    socketPath: ['', 3, `/run/${'x'.repeat(103)}`],
    socketMode: [-1, 0o1000, 1.5, '0660', '660'],
    cookieName: ['a;b', 'bad name', ''],
    sessionsPath: ['', 3],
    reverseProxy: ['yes', 1],
    verbose: ['true'],
    logMaskParams: ['token', ['a=b'], ['x y'], [3], ['']],
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
    galaxyUrl: ['', 'galaxy.example.org', 'javascript:alert(1)', 'ftp://galaxy.example.org/', 'https://u:p@galaxy.example.org/', 3],
    errorPagesDir: ['', 3],
    startingPageTimeoutMs: [-1, MAX_TIMER_MS + 1, '600000'],
    metricsPort: [70000, -1],
    metricsIp: [''],
    idleReportAfterMs: [-1, MAX_TIMER_MS + 1, '1h'],
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
