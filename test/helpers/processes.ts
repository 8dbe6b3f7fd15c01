import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';

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
