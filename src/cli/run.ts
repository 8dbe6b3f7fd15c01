import { CommanderError } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startDaemon, type Daemon } from '../daemon.js';
import { ListenError } from '../http/server.js';
import { PidFileError } from '../admin/pid-file.js';
import { ConfigError } from '../options.js';
import { createLogger, type Logger } from '../log.js';
import { checkSessionMap, formatCheckReport } from '../admin/check.js';
import { type CliOnlyOptions, type ProxyOptions } from '../options.js';
import { buildProgram, commandLineMessage, GIE_FRONT_DOOR, optionsFromProgram, type FrontDoor } from './program.js';
import { removePidFile } from '../admin/pid-file.js';
import { logProcessWarnings } from './process-warnings.js';
import { formatTriggerReport, installTrigger } from '../session-map/postgres/trigger.js';
import { isPostgresUrl, parsePostgresUrl } from '../session-map/postgres/url.js';
import { SessionsUrlError } from '../session-map/sqlalchemy-url.js';
import { resolveOptions } from '../options.js';

/** How often a PostgreSQL map is polled unless --poll-interval says otherwise (gx-it-proxy's --pollingInterval default). */
const POSTGRES_POLL_DEFAULT_MS = 5000;

/** Exit codes, documented in the README. */
const EXIT = Object.freeze({
  /** Stopped by SIGTERM/SIGINT after a graceful drain (supervisord: "expected"). */
  ok: 0,
  /** Could not start (listen failed, map path unusable), forced stop by a second signal, or --check found the map unreadable. */
  fatal: 1,
  /** Bad command line, or a --socket path held by a live socket or by a file that is not a socket. */
  usage: 2,
});

/** Log messages of the command line that admins (and tests) match on. */
export const CLI_LOG = Object.freeze({
  secondSignal: 'second signal: exiting now, cutting in-flight requests',
  shuttingDown: 'shutting down: no new connections, draining in-flight requests',
  stopped: 'stopped',
  stoppedCut: 'stopped after the grace period; remaining requests were cut',
  reloading: 'reloading the session map',
});

/** How long `--check` waits for one container to accept a TCP connection. */
const CHECK_CONNECT_TIMEOUT_MS = 2000;

/**
 * Runs the proxy from a command line. The only code that touches the process:
 * argv, exit codes, signals.
 */
export async function runCli(argv: readonly string[], door: FrontDoor = GIE_FRONT_DOOR): Promise<void> {
  const { options, cli } = parseCommandLine(argv, door);
  if (cli.installTrigger) await installTriggerAndExit(options);
  if (cli.check) await checkAndExit(options, cli);

  const log = createLogger({ verbose: options.verbose, maskParams: options.logMaskParams });
  installLastResortHandlers(log);
  logProcessWarnings(log);
  const collectGarbage = exposeGc();
  // Signal handlers go in before the start, so that a SIGTERM that follows
  // the start-up line at once (Galaxy, supervisord) still ends in exit 0.
  let daemon: Daemon | undefined;
  handleSignals(log, options, () => daemon);
  // The daemon writes it once listening and removes it when it closes; this
  // covers the exits that do not wait for that (a second signal).
  const { pidFile } = options;
  if (pidFile !== undefined) process.on('exit', () => removePidFile(pidFile, process.pid));

  try {
    daemon = await startDaemon(options, log, {}, { collectGarbage });
  } catch (err) {
    const known = err instanceof ListenError || err instanceof PidFileError;
    const fields = known ? { err, code: (err.cause as NodeJS.ErrnoException | undefined)?.code } : { err };
    log.fatal(fields, known ? err.message : 'proxy failed to start');
    // A --socket path held by a live socket or a file: restarting will not help.
    process.exit(err instanceof ListenError && err.configuration ? EXIT.usage : EXIT.fatal);
  }
}

/** The options from the command line; a bad one exits 2 with one message (Commander's, or ours). */
function parseCommandLine(argv: readonly string[], door: FrontDoor): { options: ProxyOptions; cli: CliOnlyOptions } {
  try {
    const program = buildProgram(door);
    program.parse(argv);
    const { options, cli } = optionsFromProgram(program, door);
    if (options.sessionsPath === undefined || !isPostgresUrl(options.sessionsPath)) return { options, cli };
    // Refused here, with a message that does not repeat the URL.
    parsePostgresUrl(options.sessionsPath);
    const pollGiven = program.getOptionValueSource('pollInterval') === 'cli' || program.getOptionValueSource('pollingInterval') === 'cli';
    return { options: pollGiven ? options : resolveOptions({ ...options, pollIntervalMs: POSTGRES_POLL_DEFAULT_MS }), cli };
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed the message (or the help / version).
      process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${commandLineMessage(err)}\n(run with --help for usage)\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof SessionsUrlError) {
      // One line, which says what is supported; never the value (it may hold a password).
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(EXIT.usage);
    }
    throw err;
  }
}

/** `--install-trigger`: installs gx-it-proxy's trigger in the PostgreSQL map, prints what it did, exits. */
async function installTriggerAndExit(options: ProxyOptions): Promise<never> {
  if (options.sessionsPath === undefined || !isPostgresUrl(options.sessionsPath)) {
    process.stderr.write('error: --install-trigger needs --sessions postgresql://… (the Interactive Tools map in PostgreSQL)\n');
    process.exit(EXIT.usage);
  }
  try {
    process.stdout.write(formatTriggerReport(await installTrigger(parsePostgresUrl(options.sessionsPath))));
    process.exit(EXIT.ok);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(EXIT.fatal);
  }
}

/** `--check`: reads the map once, prints the report, exits 0 when readable. */
async function checkAndExit(options: ProxyOptions, cli: CliOnlyOptions): Promise<never> {
  if (options.sessionsPath === undefined) {
    process.stderr.write('error: --check needs --sessions (header mode has no map)\n(run with --help for usage)\n');
    process.exit(EXIT.usage);
  }
  const report = await checkSessionMap(options.sessionsPath, { limit: cli.checkLimit, connectTimeoutMs: CHECK_CONNECT_TIMEOUT_MS });
  process.stdout.write(formatCheckReport(report));
  process.exit(report.readable ? EXIT.ok : EXIT.fatal);
}

/**
 * V8's `gc` in contexts made from now on (the proxy's own global has none):
 * the map's reader thread collects its own heap after each whole read, and
 * the daemon this thread's once, after the start-up read (DaemonHooks).
 */
function exposeGc(): (() => void) | undefined {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  return typeof gc === 'function' ? (gc as () => void) : undefined;
}

/** SIGTERM/SIGINT drain and exit 0 (a second one exits 1 at once); SIGHUP re-reads the map. */
function handleSignals(log: Logger, options: ProxyOptions, daemon: () => Daemon | undefined): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, CLI_LOG.secondSignal);
      process.exit(EXIT.fatal);
    }
    stopping = true;
    log.info({ signal, graceMs: options.shutdownGraceMs }, CLI_LOG.shuttingDown);
    const running = daemon();
    if (running === undefined) {
      // Still starting: nothing has been served yet.
      log.info({ graceful: true }, CLI_LOG.stopped);
      process.exit(EXIT.ok);
    }
    void running.close().then(({ graceful }) => {
      log.info({ graceful }, graceful ? CLI_LOG.stopped : CLI_LOG.stoppedCut);
      process.exit(EXIT.ok);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, CLI_LOG.reloading);
    void daemon()?.reload();
  });
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
