import { fmt, median, table } from './context.js';

/** The figures the targets are judged on; a missing one was not measured. */
export interface Figures {
  /** Medians of per-round ratios, proxy / nginx, small map. */
  cpuRatio?: number;
  rpsRatio?: number;
  /** Median of per-round ratios, large map / small map, our proxy. */
  bigOverSmall?: number;
  /** Commit → routed, ms, each insert. */
  commitMs?: number[];
  /** Median of per-round ratios of p99, writes every 500 ms / none. */
  churnP99Ratio?: number;
  rssBigMiB?: number;
  /** Median of per-round ratios, proxy / nginx. */
  wsRatio?: number;
  /** Largest RSS growth of the two streamed transfers (upload, download). */
  streamGrowthMiB?: number;
}

type Verdict = 'aim met' | 'pass' | 'FAIL' | 'not run';

interface Row {
  readonly figure: string;
  readonly target: string;
  readonly aim: string;
  readonly result: string;
  readonly verdict: Verdict;
}

/** A figure with an upper (`most`) or lower (`least`) bound as its target and aim. */
interface Bound {
  readonly figure: string;
  readonly value: number | undefined;
  readonly at: 'most' | 'least';
  readonly target: number;
  readonly aim: number;
  readonly digits: number;
  readonly unit?: string;
}

function boundRow({ figure, value, at, target, aim, digits, unit = '' }: Bound): Row {
  const show = (v: number): string => `${fmt(v, digits)}${unit}`;
  const within = (v: number, limit: number): boolean => (at === 'most' ? v <= limit : v >= limit);
  const run = value !== undefined && Number.isFinite(value);
  return {
    figure,
    target: `${at === 'most' ? '≤' : '≥'} ${show(target)}`,
    aim: show(aim),
    result: run ? show(value) : 'n/a',
    verdict: !run ? 'not run' : within(value, aim) ? 'aim met' : within(value, target) ? 'pass' : 'FAIL',
  };
}

/** The targets table with this run's results. */
export function targetRows(f: Figures, sessions: number, streamMiB: number): Row[] {
  const many = `${sessions.toLocaleString('en-US')} sessions`;
  const commitMedian = f.commitMs === undefined ? undefined : median(f.commitMs);
  const commitMax = f.commitMs === undefined ? undefined : Math.max(...f.commitMs);
  const commit: Row = {
    figure: `commit → routed at ${many}`,
    target: 'median ≤ 150 ms, max ≤ 1 s',
    aim: 'median ≤ 50 ms',
    result: commitMedian === undefined ? 'n/a' : `median ${fmt(commitMedian, 0)} ms, max ${fmt(commitMax ?? Number.NaN, 0)} ms`,
    verdict:
      commitMedian === undefined || commitMax === undefined
        ? 'not run'
        : commitMax > 1000 || commitMedian > 150
          ? 'FAIL'
          : commitMedian <= 50
            ? 'aim met'
            : 'pass',
  };
  return [
    boundRow({ figure: 'CPU per request, proxy / nginx, 1 session', value: f.cpuRatio, at: 'most', target: 4, aim: 3, digits: 2 }),
    boundRow({ figure: 'requests/s, proxy / nginx, 1 session', value: f.rpsRatio, at: 'least', target: 0.3, aim: 0.4, digits: 2 }),
    boundRow({ figure: `requests/s at ${many} / at 1 session`, value: f.bigOverSmall, at: 'least', target: 0.95, aim: 1, digits: 2 }),
    commit,
    boundRow({ figure: `p99 latency with an insert every 500 ms / without, at ${many}`, value: f.churnP99Ratio, at: 'most', target: 2, aim: 1.2, digits: 2 }),
    boundRow({ figure: `RSS at ${many}`, value: f.rssBigMiB, at: 'most', target: 150, aim: 100, digits: 0, unit: ' MiB' }),
    boundRow({ figure: 'WebSocket round-trips/s, proxy / nginx', value: f.wsRatio, at: 'least', target: 0.75, aim: 0.85, digits: 2 }),
    boundRow({ figure: `peak RSS growth while streaming ${streamMiB} MiB either way`, value: f.streamGrowthMiB, at: 'most', target: 64, aim: 32, digits: 1, unit: ' MiB' }),
  ];
}

export function targetsTable(f: Figures, sessions: number, streamMiB: number): string {
  return table(
    ['figure', 'target', 'aim', 'result', 'pass'],
    targetRows(f, sessions, streamMiB).map((r) => [r.figure, r.target, r.aim, r.result, r.verdict]),
  );
}
