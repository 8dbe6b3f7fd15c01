import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { CommanderError } from 'commander';
import {
  CLI_ONLY_DEFAULTS,
  CLI_ONLY_TABLE,
  ConfigError,
  DEFAULTS,
  MAX_TIMER_MS,
  OPTION_TABLE,
  resolveOptions,
} from '../../../src/options.js';
import { buildProgram, commandLineMessage, GIE_FRONT_DOOR, optionsFromProgram, type FrontDoor } from '../../../src/cli/program.js';
import { MIN_FILE_POLL_MS } from '../../../src/session-map/file/file-store.js';

/** Parses `args` in process; resolves what commander wrote to stderr, or the options. */
function parse(args: string[], door: FrontDoor = GIE_FRONT_DOOR): ReturnType<typeof optionsFromProgram> | { error: string } {
  const program = buildProgram(door);
  let error = '';
  program.configureOutput({ writeErr: (text) => (error += text), writeOut: () => undefined });
  try {
    program.parse(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return { error };
    throw err;
  }
  return optionsFromProgram(program, door);
}

function parsed(args: string[], door?: FrontDoor): ReturnType<typeof optionsFromProgram> {
  const result = parse(args, door);
  if ('error' in result) assert.fail(`${args.join(' ')}: ${result.error}`);
  return result;
}

function refused(args: string[]): string {
  const result = parse(args);
  assert.ok('error' in result, `${args.join(' ')} was accepted`);
  return result.error;
}

const sessionsPath = '/m.sqlite';

test('the poll interval is taken as given (0: a PostgreSQL map polls not at all); a file watch never polls more often than every 10 ms', () => {
  for (const given of [0, 9, 10, 11, 1000]) {
    assert.equal(resolveOptions({ sessionsPath, pollIntervalMs: given }).pollIntervalMs, given, `API ${given}`);
    assert.equal(parsed(['--poll-interval', String(given)]).options.pollIntervalMs, given, `--poll-interval ${given}`);
  }
  assert.equal(MIN_FILE_POLL_MS, 10);
});

test('--sessions: a file path is made absolute, a PostgreSQL URL is kept as written', () => {
  assert.equal(parsed(['--sessions', 'rel/map.sqlite']).options.sessionsPath, resolve('rel/map.sqlite'));
  for (const url of ['postgresql:///gxitproxy?host=/var/run/postgresql', 'postgres://u:p@db/gx', 'postgresql+psycopg2://db/gx']) {
    assert.equal(parsed(['--sessions', url]).options.sessionsPath, url);
  }
});

test('--socket: a path made absolute, at most 107 bytes; --socket-mode: octal permission bits, 0660 by default', () => {
  assert.equal(DEFAULTS.socketPath, undefined);
  assert.equal(parsed([]).options.socketMode, 0o660);
  const { options } = parsed(['--socket', 'run/gie.sock', '--socket-mode', '0600']);
  assert.equal(options.socketPath, resolve('run/gie.sock'));
  assert.equal(options.socketMode, 0o600);
  for (const [typed, mode] of [['660', 0o660], ['0o644', 0o644], ['0777', 0o777], ['0', 0], ['0000', 0]] as const) {
    assert.equal(parsed(['--socket-mode', typed]).options.socketMode, mode, typed);
  }
  for (const typed of ['1777', '0o1000', '8', '0x1b6', '-660', '6 6 0', 'rw-rw----', '']) {
    assert.match(refused(['--socket-mode', typed]), new RegExp(`^error: option '--socket-mode <mode>' argument '${typed}' is invalid\\. must be an octal file mode from 0000 to 0777, such as 0660\\.\\n`), typed);
  }
  // 107 bytes fit sun_path with its NUL; 108 would be bound cut short by Node.
  const fits = `/run/${'x'.repeat(102)}`;
  assert.equal(Buffer.byteLength(fits), 107);
  assert.equal(parsed(['--socket', fits]).options.socketPath, fits);
  assert.match(refused(['--socket', `${fits}y`]), /^error: option '--socket <path>' argument '\/run\/x+y' is invalid\. is too long for a unix socket \(at most 107 bytes\); use a shorter directory such as \/run\/galaxy\.\n/);
  // A relative path short as typed but long once made absolute is refused too, naming the flag.
  const deep = `${'d'.repeat(100)}/s.sock`;
  const program = buildProgram();
  program.parse(['--socket', deep], { from: 'user' });
  assert.throws(
    () => optionsFromProgram(program),
    (err: unknown) => err instanceof ConfigError && err.option === 'socketPath' && commandLineMessage(err).startsWith("error: option '--socket <path>' argument '/"),
  );
  // The API takes the mode as a number, the path as given.
  assert.equal(resolveOptions({ sessionsPath, socketPath: 'rel.sock', socketMode: 0o640 }).socketPath, 'rel.sock');
});

test('port 0 (any free port) is programmatic only; a flag must name a real port', () => {
  assert.equal(resolveOptions({ sessionsPath, port: 0, metricsPort: 0 }).port, 0);
  assert.match(refused(['--port', '0']), /^error: option '--port <n>' argument '0' is invalid\. must be an integer from 1 to 65535\.\n/);
  assert.match(refused(['--metrics-port', '0']), /^error: option '--metrics-port <n>' argument '0' is invalid\./);
  assert.equal(parsed(['--port', '65535', '--metrics-port', '1']).options.port, 65535);
});

test('a bad value of every flag is refused naming the flag as --help shows it', () => {
  const cases: Array<[string, string]> = [
    ['--port <n>', 'x'],
    ['--socket <path>', ''],
    ['--socket-mode <mode>', '0888'],
    ['--cookie <cookiename>', 'a;b'],
    ['--sessions <file>', ''],
    ['--ip <n>', ''],
    ['--shutdown-grace <ms>', '-1'],
    ['--poll-interval <ms>', '1.5'],
    ['--headers-timeout <ms>', 'soon'],
    ['--proxy-timeout <ms>', String(MAX_TIMER_MS + 1)],
    ['--ws-idle-timeout <ms>', '1e3'],
    ['--cors-origin <origins>', 'https://ok.example,ftp://x.example'],
    ['--galaxy-url <url>', 'galaxy.example.org'],
    ['--error-pages <dir>', ''],
    ['--starting-page-timeout <ms>', 'ten'],
    ['--metrics-port <n>', '65536'],
    ['--metrics-ip <n>', ''],
    ['--idle-report-after <ms>', '1h'],
    ['--pid-file <path>', ''],
    ['--log-mask-params <names>', 'api_key,a&b'],
    ['--proxyPathPrefix <path>', '/a b'],
    ['--forwardIP <n>', ''],
    ['--forwardPort <n>', '0'],
    ['--header-mode-allow <targets>', '10.0.0.0/33'],
    ['--pollingInterval <ms>', 'x'],
    ['--check-limit <n>', 'ten'],
  ];
  const valueFlags = [...Object.values(OPTION_TABLE), ...Object.values(CLI_ONLY_TABLE)]
    .map((row) => (row as { flag?: string }).flag)
    .filter((flag): flag is string => flag !== undefined && flag.includes('<'));
  assert.deepEqual(cases.map(([flag]) => flag).sort(), valueFlags.sort(), 'every flag with a value has a case');
  for (const [flag, value] of cases) {
    const error = refused([flag.split(' ')[0], value]);
    assert.equal(error.split('\n')[0].startsWith(`error: option '${flag}' argument '${value}' is invalid. `), true, error);
    assert.match(error.split('\n')[0], /\.$/);
  }
});

test('flags reach the options; paths become absolute against the working directory', () => {
  const { options, cli } = parsed([
    '--ip', '0.0.0.0', '--port', '81', '--cookie', 'gx', '--sessions', 'rel/map.sqlite', '--reverseProxy', '--verbose',
    '--shutdown-grace', '1', '--poll-interval', '20', '--headers-timeout', '2', '--proxy-timeout', '3', '--ws-idle-timeout', '4',
    '--xfwd', '--cors-origin', 'https://A.example:443, http://b.example:81', '--metrics-port', '9', '--metrics-ip', '::1',
    '--idle-report-after', '60000', '--pid-file', 'run/p.pid', '--check', '--check-limit', '0', '--log-mask-params', 'api_key, key',
  ]);
  assert.deepEqual(options, {
    ...DEFAULTS,
    ip: '0.0.0.0',
    port: 81,
    cookieName: 'gx',
    sessionsPath: resolve('rel/map.sqlite'),
    reverseProxy: true,
    verbose: true,
    logMaskParams: ['api_key', 'key'],
    shutdownGraceMs: 1,
    pollIntervalMs: 20,
    headersTimeoutMs: 2,
    proxyTimeoutMs: 3,
    webSocketIdleTimeoutMs: 4,
    xfwd: true,
    corsOrigins: ['https://a.example', 'http://b.example:81'],
    metricsPort: 9,
    metricsIp: '::1',
    idleReportAfterMs: 60_000,
    pidFile: resolve('run/p.pid'),
  });
  assert.deepEqual(cli, { pollingInterval: undefined, check: true, checkLimit: 0, installTrigger: false });
  const none = parsed([]);
  assert.deepEqual(none.options, { ...DEFAULTS, sessionsPath: resolve(DEFAULTS.sessionsPath ?? '') });
  assert.deepEqual(none.cli, CLI_ONLY_DEFAULTS);
  assert.deepEqual(parsed(['--cors-origin', '']).options.corsOrigins, [], "'' allows no origin");
  // The API takes a path as given: it has no working directory of its own.
  assert.equal(resolveOptions({ sessionsPath: 'rel/map.sqlite' }).sessionsPath, 'rel/map.sqlite');
});

test('a front door has its own name, description and defaults, and the same flags', () => {
  const door: FrontDoor = {
    name: 'other-proxy',
    description: 'Another door.',
    defaults: { sessionsPath: '/srv/other.sqlite', pollIntervalMs: 5000, checkLimit: 3 },
  };
  const program = buildProgram(door);
  const help = program.helpInformation();
  assert.match(help, /^Usage: other-proxy \[options\]\n\nAnother door\.\n/);
  assert.match(help, /--sessions <file> +Routes file to monitor \(SQLite or JSON\), or a\s+database URL as galaxy\.yml has it \(sqlite:\/\/\/…,\s+postgresql:\/\/…\)\s+\(default:\s+"\/srv\/other\.sqlite"\)/);
  assert.match(help, /\(default: 5000\)/);
  assert.deepEqual(
    program.options.map((o) => o.flags),
    buildProgram().options.map((o) => o.flags),
  );
  const { options, cli } = parsed([], door);
  assert.equal(options.sessionsPath, '/srv/other.sqlite');
  assert.equal(options.pollIntervalMs, 5000);
  assert.equal(cli.checkLimit, 3);
  assert.equal(parsed(['--poll-interval', '7'], door).options.pollIntervalMs, 7, 'the same rule for every door');
});

test('the commander options are the table rows with a flag, in table order', () => {
  const rows = [...Object.values(OPTION_TABLE), ...Object.values(CLI_ONLY_TABLE)] as Array<{ flag?: string }>;
  const flags = rows.map((row) => row.flag).filter((flag) => flag !== undefined);
  assert.deepEqual(
    buildProgram().options.map((o) => o.flags),
    ['-V, --version', ...flags],
  );
  assert.equal(OPTION_TABLE.reloadDebounceMs.flag, undefined, 'programmatic only');
});

test('a ConfigError met on the command line is reported in commander words with the flag', () => {
  const err = new ConfigError('cookieName', 'a b', 'must be a cookie name');
  assert.equal(commandLineMessage(err), "error: option '--cookie <cookiename>' argument 'a b' is invalid. must be a cookie name.");
  assert.equal(commandLineMessage(new ConfigError('reloadDebounceMs', '-1', 'must be a whole number')), 'error: option reloadDebounceMs: "-1" must be a whole number');
});

test('Interactive Tools options: the gx-it-proxy door, the prefix normalised, the allow-list checked, --pollingInterval as --poll-interval', async () => {
  const { GX_IT_PROXY_FRONT_DOOR } = await import('../../../src/cli/program.js');
  const it = parsed([], GX_IT_PROXY_FRONT_DOOR).options;
  assert.equal(it.sessionsPath, undefined, 'no map: header mode');
  assert.equal(it.interactiveTools, true);
  assert.equal(it.port, 8000);
  assert.equal(it.ip, 'localhost');
  assert.equal(parsed(['--sessions', 'm.sqlite'], GX_IT_PROXY_FRONT_DOOR).options.sessionsPath, resolve('m.sqlite'));
  assert.equal(parsed([]).options.interactiveTools, false);
  assert.equal(parsed(['--proxyPathPrefix', '/interactivetool/ep/']).options.pathPrefix, '/interactivetool/ep');
  assert.equal(parsed(['--proxyPathPrefix', 'foo/bar/ep']).options.pathPrefix, '/foo/bar/ep');
  const fwd = parsed(['--forwardIP', '10.0.0.9', '--forwardPort', '4003']).options;
  assert.deepEqual([fwd.forwardIP, fwd.forwardPort], ['10.0.0.9', 4003]);
  const allow = parsed(['--header-mode-allow', '10.0.0.0/8, node7:8888']).options.headerModeAllow;
  assert.deepEqual(allow?.items, ['10.0.0.0/8', 'node7:8888']);
  assert.equal(allow?.allows('10.1.1.1', 80), true);
  assert.match(refused(['--header-mode-allow', '10.0.0.0/8,bad host']), /^error: option '--header-mode-allow <targets>' argument '10\.0\.0\.0\/8,bad host' is invalid\. "bad host" is not an IP address/);
  assert.throws(() => resolveOptions({ sessionsPath, headerModeAllow: ['x:0'] as never }), (e: ConfigError) => e.option === 'headerModeAllow' && e.value === 'x:0');
  // gx-it-proxy 0.2.3 parsed --pollingInterval N as NaN (polling off); here it is --poll-interval's number, and wins.
  assert.equal(parsed(['--pollingInterval', '2500']).options.pollIntervalMs, 2500);
  assert.equal(parsed(['--poll-interval', '100', '--pollingInterval', '2500']).options.pollIntervalMs, 2500);
  // 0: a PostgreSQL map relies on LISTEN alone; a file watch still checks every 10 ms at most.
  assert.equal(parsed(['--pollingInterval', '0']).options.pollIntervalMs, 0);
});
