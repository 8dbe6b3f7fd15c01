import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { startDaemon, type Daemon } from '../daemon.js';
import { ListenError } from '../http/server.js';
import { PidFileError } from '../admin/pid-file.js';
import { ConfigError } from './options.js';
import { createLogger, type Logger } from '../log.js';
import { checkSessionMap, formatCheckReport } from '../admin/check.js';
import { DEFAULTS, MAX_TIMER_MS, resolveOptions, type ProxyOptions } from './options.js';
import { removePidFile } from '../admin/pid-file.js';
import { VERSION } from '../daemon.js';
import { logProcessWarnings } from './process-warnings.js';

/** Exit codes, documented in the README. */
export const EXIT = Object.freeze({
  /** Stopped by SIGTERM/SIGINT after a graceful drain (supervisord: "expected"). */
  ok: 0,
  /** Could not start (listen failed, map path unusable), forced stop by a second signal, or --check found the map unreadable. */
  fatal: 1,
  /** Bad command line. */
  usage: 2,
});

function parsePort(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw new InvalidArgumentError('must be an integer from 1 to 65535.');
  }
  return Number(value);
}

/** How long `--check` waits for one container to accept a TCP connection. */
const CHECK_CONNECT_TIMEOUT_MS = 2000;

function parseCount(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number.');
  return Number(value);
}

function parseMs(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > MAX_TIMER_MS) {
    throw new InvalidArgumentError(`must be a whole number of milliseconds from 0 to ${MAX_TIMER_MS}.`);
  }
  return Number(value);
}

/** `a,b,c` → ['a', 'b', 'c']; blanks dropped, so `''` allows no origin. Checked by resolveOptions. */
function parseList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** A millisecond-valued flag with its default. */
function msOption(flags: string, description: string, defaultMs: number): Option {
  return new Option(flags, description).argParser(parseMs).default(defaultMs);
}

/** The command line, with the legacy proxy's flag spellings and defaults. */
export function buildProgram(): Command {
  return new Command()
    .name('galaxy-gie-proxy')
    .description("Routes each Galaxy user's interactive environment (Jupyter, RStudio) by their session cookie.")
    .version(VERSION, '-V, --version', 'output the version number')
    .helpOption('-h, --help', 'display help for command')
    .option('--ip <n>', 'Public-facing IP of the proxy', DEFAULTS.ip)
    .option('--port <n>', 'Public-facing port of the proxy', parsePort, DEFAULTS.port)
    .option('--cookie <cookiename>', 'Cookie proving authentication', DEFAULTS.cookieName)
    .option('--sessions <file>', 'Routes file to monitor (SQLite or JSON)', DEFAULTS.sessionsPath)
    .option('--reverseProxy', 'Rewrite redirects to http://localhost/ to carry the proxy port')
    .option('--verbose', 'Log every proxied request')
    .addOption(
      new Option('--log-mask-params <names>', 'Mask the values of these comma-separated query parameters in log lines, besides token and _xsrf').argParser(parseList),
    )
    .addOption(msOption('--shutdown-grace <ms>', 'How long in-flight requests may finish after SIGTERM', DEFAULTS.shutdownGraceMs))
    .addOption(msOption('--poll-interval <ms>', 'Re-check the map this often even without file events (NFS)', DEFAULTS.pollIntervalMs))
    .addOption(msOption('--headers-timeout <ms>', 'Drop a client whose request headers are not complete within this time (0: no limit)', DEFAULTS.headersTimeoutMs))
    .addOption(msOption('--proxy-timeout <ms>', 'Answer 504 when a container has not started its response this long after the request (0: no limit)', DEFAULTS.proxyTimeoutMs))
    .addOption(msOption('--ws-idle-timeout <ms>', 'Close a WebSocket with no traffic either way for this long (0: never)', DEFAULTS.webSocketIdleTimeoutMs))
    .option('--xfwd', 'Add X-Forwarded-For/-Port/-Proto/-Host headers for the container')
    .addOption(
      new Option('--cors-origin <origins>', 'Only these comma-separated origins get CORS headers (default: echo any Origin)').argParser(parseList),
    )
    .addOption(new Option('--metrics-port <n>', 'Serve /health and /metrics on this port (default: off)').argParser(parsePort))
    .option('--metrics-ip <n>', 'Address of the metrics listener', DEFAULTS.metricsIp)
    .option('--pid-file <path>', 'Write the process id to this file while running')
    .option('--check', 'Read the session map once, report what it holds and exit (0: readable, 1: not)')
    .addOption(
      new Option('--check-limit <n>', 'How many of the newest sessions --check tries a TCP connect to')
        .argParser(parseCount)
        .default(10),
    )
    .showHelpAfterError('(run with --help for usage)')
    .allowExcessArguments(false)
    .exitOverride();
}

interface ParsedFlags {
  ip: string;
  port: number;
  cookie: string;
  sessions: string;
  reverseProxy?: boolean;
  verbose?: boolean;
  logMaskParams?: string[];
  shutdownGrace: number;
  pollInterval: number;
  headersTimeout: number;
  proxyTimeout: number;
  wsIdleTimeout: number;
  xfwd?: boolean;
  corsOrigin?: string[];
  metricsPort?: number;
  metricsIp: string;
  pidFile?: string;
  check?: boolean;
  checkLimit: number;
}

function toOptions(flags: ParsedFlags): ProxyOptions {
  return resolveOptions({
    ip: flags.ip,
    port: flags.port,
    cookieName: flags.cookie,
    sessionsPath: resolve(flags.sessions),
    reverseProxy: flags.reverseProxy === true,
    verbose: flags.verbose === true,
    logMaskParams: flags.logMaskParams,
    shutdownGraceMs: flags.shutdownGrace,
    pollIntervalMs: Math.max(flags.pollInterval, 10),
    headersTimeoutMs: flags.headersTimeout,
    proxyTimeoutMs: flags.proxyTimeout,
    webSocketIdleTimeoutMs: flags.wsIdleTimeout,
    xfwd: flags.xfwd === true,
    corsOrigins: flags.corsOrigin ?? null,
    metricsPort: flags.metricsPort,
    metricsIp: flags.metricsIp,
    pidFile: flags.pidFile === undefined ? undefined : resolve(flags.pidFile),
  });
}

/**
 * Runs the proxy from a command line. The only code that touches the process:
 * argv, exit codes, signals.
 */
export async function runCli(argv: readonly string[]): Promise<void> {
  let options: ProxyOptions;
  let flags: ParsedFlags;
  try {
    const program = buildProgram();
    program.parse(argv as string[]);
    flags = program.opts<ParsedFlags>();
    options = toOptions(flags);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed the message (or the help / version).
      process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\n(run with --help for usage)\n`);
      process.exit(EXIT.usage);
    }
    throw err;
  }

  if (flags.check === true) {
    const report = await checkSessionMap(options.sessionsPath, { limit: flags.checkLimit, connectTimeoutMs: CHECK_CONNECT_TIMEOUT_MS });
    process.stdout.write(formatCheckReport(report));
    process.exit(report.readable ? EXIT.ok : EXIT.fatal);
  }

  const log = createLogger({ verbose: options.verbose, maskParams: options.logMaskParams });
  installLastResortHandlers(log);
  logProcessWarnings(log);

  // Signal handlers go in before the start, so that a SIGTERM that follows
  // the start-up line at once (Galaxy, supervisord) still ends in exit 0.
  let daemon: Daemon | undefined;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now, cutting in-flight requests');
      process.exit(EXIT.fatal);
    }
    stopping = true;
    log.info(
      { signal, graceMs: options.shutdownGraceMs },
      'shutting down: no new connections, draining in-flight requests',
    );
    if (daemon === undefined) {
      // Still starting: nothing has been served yet.
      log.info({ graceful: true }, 'stopped');
      process.exit(EXIT.ok);
    }
    void daemon.close().then(({ graceful }) => {
      log.info({ graceful }, graceful ? 'stopped' : 'stopped after the grace period; remaining requests were cut');
      process.exit(EXIT.ok);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading the session map');
    void daemon?.reload();
  });
  // The daemon writes it once listening and removes it when it closes; this
  // covers the exits that do not wait for that (a second signal).
  const { pidFile } = options;
  if (pidFile !== undefined) process.on('exit', () => removePidFile(pidFile, process.pid));

  try {
    daemon = await startDaemon(options, log);
  } catch (err) {
    const known = err instanceof ListenError || err instanceof PidFileError;
    const fields = known ? { err, code: (err.cause as NodeJS.ErrnoException).code } : { err };
    log.fatal(fields, known ? err.message : 'proxy failed to start');
    process.exit(EXIT.fatal);
  }
}

/**
 * Galaxy never restarts a proxy it spawned: if this process died, every
 * interactive environment would be gone until Galaxy restarts. A bug that
 * escapes a handler is logged loudly and the proxy keeps serving.
 */
function installLastResortHandlers(log: Logger): void {
  process.on('uncaughtException', (err) => {
    log.error({ err }, 'internal error (a bug); the proxy keeps running');
  });
  process.on('unhandledRejection', (reason) => {
    log.error({ err: reason }, 'internal error (unhandled rejection, a bug); the proxy keeps running');
  });
}
