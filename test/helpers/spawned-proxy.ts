import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { LogCapture, type LogLine } from './logs.js';
import { freePort } from './ports.js';
import { DAEMON_LOG } from '../../src/daemon.js';

/** The built CLI, the path Galaxy spawns. */
export const MAIN_JS = fileURLToPath(new URL('../../lib/main.js', import.meta.url));

/** A spawned lib/main.js with its stdout parsed as log lines. */
export class ProxyProcess {
  readonly logs = new LogCapture();
  /** Everything written on stdout, as text (for output that is not log lines, such as --check). */
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (c: Buffer) => {
      this.stdout += c.toString('utf8');
      this.logs.feed(c.toString('utf8'));
    });
    child.stderr?.on('data', (c: Buffer) => (this.stderr += c.toString('utf8')));
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    outliveGuard(child);
  }

  /** Waits for the start-up line and returns it. */
  started(timeoutMs = 5000): Promise<LogLine> {
    return this.logs.waitFor((l) => l.msg === DAEMON_LOG.listening, timeoutMs);
  }

  /** Resolves with the exit, or rejects after `timeoutMs` (and kills the child). */
  async exit(timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`process did not exit within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
        }),
      ]);
      return { ...result, ms: Date.now() - t0 };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the child if still running (for t.after). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** Spawned proxies still running, killed when the test process exits (see outliveGuard). */
const running = new Set<ChildProcess>();
let guarding = false;

/**
 * A spawned proxy must not outlive its test file: a test that times out, or
 * a run ended by --test-force-exit, may never reach its t.after kill, and a
 * proxy left running (seen after a failed browser test, 25 minutes later)
 * holds ports and CPU on a CI machine. So whatever is still running when this
 * process exits is killed then.
 */
function outliveGuard(child: ChildProcess): void {
  if (!guarding) process.once('exit', killRunning);
  guarding = true;
  running.add(child);
  child.once('exit', () => running.delete(child));
}

function killRunning(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** The built gx-it-proxy command (bin/gx-it-proxy.js runs it). */
export const GX_IT_PROXY_JS = fileURLToPath(new URL('../../lib/gx-it-proxy.js', import.meta.url));

/** How spawnProxy runs the CLI. */
export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Which command: lib/main.js (the default, the path Galaxy spawns) or lib/gx-it-proxy.js. */
  bin?: 'main' | 'gx-it-proxy';
  /** Run the command's file itself as an executable (its shebang and mode bits), as Galaxy does; default `node <file>`. */
  executable?: boolean;
}

/**
 * The one way to run the CLI in a child process: `node lib/main.js ...args`
 * (argv list, no shell, as Galaxy spawns it), the gx-it-proxy command with
 * `bin`, or the file itself with `executable`. For runs that exit (usage
 * errors, --check) and start-ups a test drives itself; startSpawnedProxy is
 * this plus a free port and the wait for the start-up line.
 */
export function spawnProxy(args: string[], { cwd, env, bin = 'main', executable = false }: SpawnOptions = {}): ProxyProcess {
  const script = bin === 'gx-it-proxy' ? GX_IT_PROXY_JS : MAIN_JS;
  const [command, argv] = executable ? [script, args] : [process.execPath, [script, ...args]];
  return new ProxyProcess(spawn(command, argv, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** A spawned lib/main.js listening on 127.0.0.1, started. */
export interface SpawnedProxy {
  proc: ProxyProcess;
  pid: number;
  port: number;
}

/**
 * A running proxy in a child process: spawnProxy on a free loopback port with
 * `--sessions` and extra flags, resolved once its start-up line is logged,
 * killed in t.after.
 */
export async function startSpawnedProxy(
  t: { after: (fn: () => unknown) => void },
  sessionsPath: string,
  args: string[] = [],
  options: SpawnOptions = {},
): Promise<SpawnedProxy> {
  const port = await freePort();
  const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', sessionsPath, ...args], options);
  t.after(() => proc.kill());
  await proc.started(10_000);
  return { proc, pid: proc.child.pid ?? 0, port };
}

/** True while the child has not exited. */
export function alive(proxy: SpawnedProxy): boolean {
  return proxy.proc.child.exitCode === null && proxy.proc.child.signalCode === null;
}
