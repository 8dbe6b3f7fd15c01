import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { LogCapture, type LogLine } from './logs.js';

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
  }

  /** Waits for the start-up line and returns it. */
  started(timeoutMs = 5000): Promise<LogLine> {
    return this.logs.waitFor((l) => l.msg === 'proxy listening', timeoutMs);
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

/** The built gx-it-proxy command (bin/gx-it-proxy.js runs it). */
export const GX_IT_PROXY_JS = fileURLToPath(new URL('../../lib/gx-it-proxy.js', import.meta.url));

/**
 * Spawns `node lib/main.js ...args` (argv list, no shell, as Galaxy does), or
 * with `bin: 'gx-it-proxy'` the gx-it-proxy command.
 */
export function spawnProxy(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; bin?: 'main' | 'gx-it-proxy' } = {}): ProxyProcess {
  const script = options.bin === 'gx-it-proxy' ? GX_IT_PROXY_JS : MAIN_JS;
  const child = spawn(process.execPath, [script, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new ProxyProcess(child);
}

/** Spawns lib/main.js directly as an executable, relying on its shebang and mode bits. */
export function spawnExecutable(args: string[], options: { cwd?: string } = {}): ProxyProcess {
  const child = spawn(MAIN_JS, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  return new ProxyProcess(child);
}
