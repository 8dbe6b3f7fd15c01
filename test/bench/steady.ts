import { execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CLK_TCK } from './proc-stats.js';
import type { BenchResources } from './processes.js';

const CPU_PROBE = fileURLToPath(new URL('./cpu-probe.ts', import.meta.url));

/**
 * Which cores the processes run on. With two cores or more, the servers
 * under test (the proxies, nginx as a proxy, the probe) get core 0 and the
 * load side (wrk, the backends, this process) core 1, so that the load
 * generator never takes time from the server it measures. With one core,
 * nothing is pinned.
 */
export interface Pinning {
  readonly servers: string | undefined;
  readonly load: string | undefined;
}

export function choosePinning(): Pinning {
  if (cpus().length < 2 || !hasTaskset()) return { servers: undefined, load: undefined };
  return { servers: '0', load: '1' };
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `command args` run on `cores` (taskset execs it: the pid stays the same), or as is. */
export function onCores(cores: string | undefined, command: string, args: readonly string[]): [string, string[]] {
  return cores === undefined ? [command, [...args]] : ['taskset', ['-c', cores, command, ...args]];
}

/** Pins every thread of this process to `cores`. */
export function pinSelf(cores: string | undefined): void {
  if (cores !== undefined) execFileSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)], { stdio: 'ignore' });
}

/**
 * Busy ticks of the whole machine: user, nice, system, irq and softirq (this
 * kernel charges interrupt ticks to the running process too, so they must be
 * on both sides of the subtraction), and steal (time the hypervisor gave to
 * other machines).
 */
function machineTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return user! + nice! + system! + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
}

/** utime + stime + cutime + cstime of one process (its own threads and its reaped children). */
function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0; // gone between listing and reading
  }
}

function descendants(pid: number, into: number[] = []): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return into;
  }
  for (const tid of tasks) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const child of children.split(' ').filter((s) => s.length > 0).map(Number)) {
      into.push(child);
      descendants(child, into);
    }
  }
  return into;
}

/** Ticks used by this process and everything it started (running or already reaped). */
function ourTicks(): number {
  return [process.pid, ...descendants(process.pid)].reduce((sum, pid) => sum + processTicks(pid), 0);
}

/** How steady the machine was during one measured round. */
export interface Steadiness {
  /** Probe before and after the round, ms (lower is faster). */
  readonly probeMs: readonly [number, number];
  /** CPU used by processes the bench did not start, plus steal, as a share of one core over the round. */
  readonly foreign: number;
  /** Attempts it took (1: the first was steady). */
  readonly attempts: number;
  /** False when every attempt was disturbed and the least disturbed one was kept. */
  readonly steady: boolean;
}

export interface SteadyOptions {
  /** Largest change of the probe across a round, and above the run's fastest probe. */
  readonly maxDrift: number;
  readonly maxSlowdown: number;
  /** Largest foreign CPU, as a share of one core. */
  readonly maxForeign: number;
  /** Attempts per round before the least disturbed one is kept. */
  readonly maxAttempts: number;
  /** Longest wait, before each attempt, for the other processes on the machine to go quiet; and over the whole run. */
  readonly maxQuietWaitMs: number;
  readonly maxTotalQuietWaitMs: number;
  /** Time the run may spend on discarded attempts; past it, every round is kept as first measured (flagged when unsteady). */
  readonly maxTotalRerunMs: number;
}

export const DEFAULT_STEADY: SteadyOptions = {
  maxDrift: 0.04,
  maxSlowdown: 0.08,
  maxForeign: 0.05,
  maxAttempts: 4,
  maxQuietWaitMs: 10_000,
  maxTotalQuietWaitMs: 60_000,
  maxTotalRerunMs: 60_000,
};

/** Window over which the machine must be quiet before an attempt starts. */
const QUIET_WINDOW_MS = 250;

/**
 * Runs measurements only while the machine is steady: the CPU-speed probe
 * (a SHA-256 loop on the servers' core) before and after each round, and the
 * CPU time of processes the bench did not start (from /proc/stat) during it.
 * A round during which the probe moved, or that shared the machine with
 * other work, is discarded and run again.
 */
export class SteadyRunner {
  private fastest = Number.POSITIVE_INFINITY;
  private readonly lines: AsyncIterator<string>;
  private readonly exited: Promise<never>;
  /** Rounds measured, and attempts discarded, over the run. */
  rounds = 0;
  discarded = 0;
  unsteady = 0;
  /** Time spent waiting for other processes to go quiet, and on attempts discarded. */
  waitedMs = 0;
  rerunMs = 0;
  readonly probes: number[] = [];

  private constructor(
    private readonly child: ChildProcess,
    private readonly options: SteadyOptions,
    private readonly progress: (line: string) => void,
  ) {
    this.lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    this.exited = once(child, 'exit').then(() => {
      throw new Error('the CPU probe exited');
    });
    this.exited.catch(() => undefined); // only an error while a probe is awaited
  }

  static async start(resources: BenchResources, pinning: Pinning, progress: (line: string) => void, options = DEFAULT_STEADY): Promise<SteadyRunner> {
    const [command, args] = onCores(pinning.servers, process.execPath, ['--import', 'tsx', CPU_PROBE]);
    const child = resources.spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const runner = new SteadyRunner(child, options, progress);
    // The first answers include the probe's own warm-up; they set no baseline.
    for (let i = 0; i < 3; i++) await runner.probe();
    runner.fastest = Number.POSITIVE_INFINITY;
    runner.probes.length = 0;
    return runner;
  }

  async probe(): Promise<number> {
    this.child.stdin!.write('\n');
    const next = await Promise.race([this.lines.next(), this.exited]);
    if (next.done === true) throw new Error('the CPU probe closed its output');
    const ms = Number(next.value);
    this.probes.push(ms);
    this.fastest = Math.min(this.fastest, ms);
    return ms;
  }

  /** Runs `measure` until one run of it meets steady conditions (or attempts run out). */
  async measure<T>(label: string, measure: () => Promise<T>): Promise<T & { steadiness: Steadiness }> {
    const { maxDrift, maxSlowdown, maxForeign, maxAttempts } = this.options;
    let best: { result: T; steadiness: Steadiness; badness: number } | undefined;
    this.rounds++;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const last = attempt === maxAttempts || this.rerunMs >= this.options.maxTotalRerunMs;
      await this.quiet();
      const before = await this.probe();
      const ticks0 = machineTicks() - ourTicks();
      const t0 = performance.now();
      const result = await measure();
      const seconds = (performance.now() - t0) / 1000;
      const foreign = Math.max(0, machineTicks() - ourTicks() - ticks0) / CLK_TCK / seconds;
      const after = await this.probe();
      const drift = Math.max(before, after) / Math.min(before, after) - 1;
      const slowdown = Math.max(before, after) / this.fastest - 1;
      const steadiness = { probeMs: [before, after] as const, foreign, attempts: attempt, steady: true };
      const badness = Math.max(drift / maxDrift, slowdown / maxSlowdown, foreign / maxForeign);
      if (badness <= 1) return { ...result, steadiness };
      if (last && best === undefined) {
        this.unsteady++;
        this.progress(`    ${label}: unsteady, kept (the run's time for re-runs is used up)`);
        return { ...result, steadiness: { ...steadiness, steady: false } };
      }
      this.discarded++;
      this.rerunMs += seconds * 1000;
      const why = [
        drift > maxDrift ? `probe moved ${pct(drift)}` : '',
        slowdown > maxSlowdown ? `probe ${pct(slowdown)} slower than the fastest` : '',
        foreign > maxForeign ? `other processes used ${pct(foreign)} of a core` : '',
      ].filter((s) => s.length > 0);
      this.progress(`    ${label}: discarded (${why.join(', ')}), attempt ${attempt}/${maxAttempts}`);
      if (best === undefined || badness < best.badness) best = { result, steadiness: { ...steadiness, steady: false }, badness };
      if (last) break;
    }
    this.unsteady++;
    return { ...best!.result, steadiness: best!.steadiness };
  }

  /**
   * Waits (at most maxQuietWaitMs) until processes the bench did not start
   * leave the machine alone for a short window: on a shared machine a round
   * started in a quiet moment is far more often kept.
   */
  private async quiet(): Promise<void> {
    const started = performance.now();
    const limit = Math.min(this.options.maxQuietWaitMs, this.options.maxTotalQuietWaitMs - this.waitedMs);
    while (performance.now() - started < limit) {
      const ticks0 = machineTicks() - ourTicks();
      await new Promise((resolve) => setTimeout(resolve, QUIET_WINDOW_MS));
      const foreign = (machineTicks() - ourTicks() - ticks0) / CLK_TCK / (QUIET_WINDOW_MS / 1000);
      // Two ticks of slack: per-process and per-machine tick counts are sampled differently.
      if (foreign <= this.options.maxForeign + 2 / CLK_TCK / (QUIET_WINDOW_MS / 1000)) break;
    }
    this.waitedMs += performance.now() - started;
  }

  /** One line on how steady the run was. */
  summary(): string {
    const sorted = [...this.probes].sort((a, b) => a - b);
    const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
    return (
      `${this.rounds} rounds measured, ${this.discarded} attempts discarded as unsteady, ${this.unsteady} rounds kept although unsteady (attempts or the run's re-run time used up), ` +
      `${(this.waitedMs / 1000).toFixed(0)} s spent waiting for other processes to go quiet and ${(this.rerunMs / 1000).toFixed(0)} s on discarded attempts; ` +
      `CPU probe ${sorted.length} samples, fastest ${q(0).toFixed(3)} ms, median ${q(0.5).toFixed(3)} ms, slowest ${q(1).toFixed(3)} ms`
    );
  }
}

function pct(share: number): string {
  return `${(share * 100).toFixed(0)} %`;
}
