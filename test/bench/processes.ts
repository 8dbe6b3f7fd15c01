import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How long a child may take to stop after SIGTERM before it gets SIGKILL. */
const STOP_GRACE_MS = 3000;

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * Every process and the temp directory the benchmark creates, so that all of
 * them go away however the run ends: normally (`close`), by an exception
 * (the caller's `finally`), by Ctrl-C or a kill (signal traps), or by an
 * unexpected exit (a synchronous SIGKILL in the `exit` handler).
 */
export class BenchResources {
  readonly dir = mkdtempSync(join(tmpdir(), 'gie-bench-'));
  private readonly children = new Set<ChildProcess>();
  private closing: Promise<void> | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nbench: ${signal} received, stopping everything it started\n`);
    void this.close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  private readonly onExit = (): void => {
    for (const child of this.children) if (alive(child)) child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  };

  constructor() {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, this.onSignal);
    process.once('exit', this.onExit);
  }

  /** Spawns a child (argv list, no shell) that `close` will stop. */
  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    this.adopt(child);
    return child;
  }

  /** Registers a child spawned elsewhere (e.g. by test/helpers/spawned-proxy.ts). */
  adopt(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    // A child that cannot be spawned must fail the run, not crash it.
    child.on('error', () => undefined);
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves when it is gone. */
  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!alive(child)) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops every child still running and removes the temp directory. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.children].map((child) => this.stop(child)));
      rmSync(this.dir, { recursive: true, force: true });
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, this.onSignal);
      process.off('exit', this.onExit);
    })();
    return this.closing;
  }
}

/** Resolves with the first stdout line of `child` that `match` accepts; rejects on exit or timeout. */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, what: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      const found = lines.find(match);
      if (found !== undefined) finish(() => resolve(found));
    };
    const onErr = (chunk: Buffer): void => {
      stderr += chunk.toString('utf8');
    };
    const onExit = (code: number | null): void => finish(() => reject(new Error(`${what} exited (${code}) before it was ready: ${stderr.trim()}`)));
    const timer = setTimeout(() => finish(() => reject(new Error(`${what} not ready after ${timeoutMs} ms: ${stderr.trim()}`))), timeoutMs);
    function finish(settle: () => void): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      settle();
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
