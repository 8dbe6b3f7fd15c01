import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { waitUntil } from './wait.js';

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
  try {
    return await waitUntil(`at most ${atMost} open descriptors`, () => {
      const n = openFds(pid);
      return n <= atMost && n;
    }, { timeoutMs, everyMs: 50 });
  } catch (err) {
    throw new Error(`${(err as Error).message}; process ${pid} holds:\n${describeFds(pid).join('\n')}`);
  }
}

const TCP_STATES: Record<string, string> = { '01': 'ESTABLISHED', '02': 'SYN_SENT', '06': 'TIME_WAIT', '07': 'CLOSE', '08': 'CLOSE_WAIT', '0A': 'LISTEN', '09': 'LAST_ACK', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2' };

/** One line per open descriptor; TCP sockets with their ports and state, to tell what leaked. */
export function describeFds(pid: number): string[] {
  const sockets = new Map<string, string>();
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10) continue;
      const port = (addr: string | undefined): number => parseInt(addr?.split(':')[1] ?? '0', 16);
      sockets.set(f[9], `tcp :${port(f[1])} -> :${port(f[2])} ${TCP_STATES[f[3]] ?? f[3]}`);
    }
  }
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    let target = '?';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    return `${fd}: ${inode === undefined ? target : (sockets.get(inode) ?? target)}`;
  });
}
