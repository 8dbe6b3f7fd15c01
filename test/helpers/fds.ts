import { readdirSync, readFileSync } from 'node:fs';

/** Open file descriptors of a process (Linux /proc). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? 0 : Number(match[1]) * 1024;
}

/**
 * Waits until the process holds at most `atMost` descriptors. Closing a
 * socket has no event a test can await from outside the process, so this
 * polls /proc, bounded by `timeoutMs`; resolves with the final count.
 */
export async function waitForFds(pid: number, atMost: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = openFds(pid);
    if (n <= atMost) return n;
    if (Date.now() > deadline) throw new Error(`process ${pid} still holds ${n} file descriptors (baseline ${atMost}) after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
