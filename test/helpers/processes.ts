import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';

/** True while a process with this pid exists (and is not a zombie we could reap). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Stops a child for t.after: `signal`, then SIGKILL if it has not exited
 * within `graceMs`. `group` signals its whole process group (a child spawned
 * with `detached: true`), so grandchildren go too.
 */
export async function stopChild(child: ChildProcess, { signal = 'SIGTERM', graceMs = 10_000, group = false }: { signal?: NodeJS.Signals; graceMs?: number; group?: boolean } = {}): Promise<void> {
  if (child.pid === undefined) return;
  const send = (s: NodeJS.Signals): void => {
    try {
      process.kill(group ? -child.pid! : child.pid!, s);
    } catch {
      // already gone
    }
  };
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit').then(() => undefined);
  send(signal);
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
  clearTimeout(timer);
  if (!inTime || group) send('SIGKILL');
  if (!inTime) await exited;
}

/** What a finished command printed, and how long it took. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs a command to completion (argv list, no shell) in its own process
 * group; after `timeoutMs` the whole group is killed (compilers that npm
 * started included) and the promise rejects. Rejects as well on a non-zero
 * exit unless `allowFailure`.
 */
export async function runBounded(
  command: string,
  args: readonly string[],
  { cwd, env, timeoutMs, allowFailure = false }: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number; allowFailure?: boolean },
): Promise<RunResult> {
  const started = Date.now();
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, timeoutMs);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  const result = { code, signal, stdout, stderr, ms: Date.now() - started };
  const what = `${command} ${args.join(' ')}`;
  if (timedOut) throw new Error(`${what} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`);
  if (code !== 0 && !allowFailure) throw new Error(`${what} exited with ${code ?? signal}\n${stdout}\n${stderr}`);
  return result;
}

/** One live process, from /proc (Linux). */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  /** The kernel's state letter: R, S, D, Z (zombie: exited, not yet reaped), ... */
  state: string;
  argv: string[];
}

/** Every process on the machine that has not exited (zombies left out), from /proc. */
export function runningProcesses(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name in parentheses may hold spaces: the fields start after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      found.push({ pid: Number(entry), ppid: Number(ppid), pgid: Number(pgid), state, argv });
    } catch {
      // exited while we looked
    }
  }
  return found;
}
