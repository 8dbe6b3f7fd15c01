import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (CLK_TCK, 100 on Linux). */
export const CLK_TCK = (() => {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time (user + system, all threads) a process has used so far, in
 * seconds, from /proc/<pid>/stat. The command name (field 2) may hold spaces,
 * so fields are counted from the closing parenthesis.
 */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state(3) ppid(4) ... utime(14) stime(15) → indexes 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / CLK_TCK;
}

/** Resident set size now and its high-water mark, in MiB, from /proc/<pid>/status. */
export function memory(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match === null ? Number.NaN : Number(match[1]);
  };
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}

/** Direct children of a process (nginx's workers under its master). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s.length > 0)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * Samples a process's RSS every `intervalMs` until stopped; returns the
 * highest sample and the kernel's high-water mark at the end.
 */
export function sampleRss(pid: number, intervalMs = 20): { stop: () => { peakMiB: number; hwmMiB: number } } {
  let peak = memory(pid).rssMiB;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, memory(pid).rssMiB);
    } catch {
      // the process went away; the caller notices
    }
  }, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      const now = memory(pid);
      return { peakMiB: Math.max(peak, now.rssMiB), hwmMiB: now.hwmMiB };
    },
  };
}

/**
 * Waits until a process is nearly idle (under `maxShare` of one core over
 * `windowMs`), so that one measurement does not inherit the work another
 * left behind (a re-read of a large map, the garbage collection after it).
 * Resolves with how long it waited beyond one quiet window (0: it was idle),
 * or -1 if it never settled in `timeoutMs`.
 */
export async function waitUntilIdle(pid: number, { windowMs = 300, maxShare = 0.05, timeoutMs = 30_000 } = {}): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const before = cpuSeconds(pid);
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    if ((cpuSeconds(pid) - before) * 1000 <= windowMs * maxShare) return Math.max(0, Date.now() - started - windowMs);
  }
  return -1;
}
