import { fmt, fmtSpread, median, table, type Spread } from './context.js';

/** The figures the targets are judged on; a missing one was not measured. */
export interface Figures {
  /** Per-round ratios to the bare reference (test/bench/reference-proxy.ts), 1 session. */
  rpsRatio?: Spread;
  cpuRatio?: Spread;
  wsRatio?: Spread;
  /** Proxy at the large map / at 1 session, per round, divided by nginx's own large / small. */
  bigOverSmall?: Spread;
  /** Commit → routed, ms, each insert. */
  commitMs?: number[];
  /** Per-round ratios of p99, a write every 500 ms / none, large map. */
  churnP99Ratio?: Spread;
  /** RSS of the proxy at the large map: once idle (the largest such sample), and the highest sample during a full re-read. */
  rssSteadyMiB?: number;
  rssPeakMiB?: number;
  /** Interactive Tools routing / cookie routing, requests/s per round, 1 and large entry points. */
  itOverCookieSmall?: Spread;
  itOverCookieBig?: Spread;
  /** PostgreSQL map: requests/s at the large map / at 1 entry point, per round; commit → routed, ms; p99 while Galaxy removes entry points (each a read of the buckets that lost rows) / without. */
  pgBigOverSmall?: Spread;
  pgCommitMs?: number[];
  pgStallP99Ratio?: Spread;
  /** p99 while the proxy reads the whole PostgreSQL table again (its connection cut) / without. */
  pgRereadP99Ratio?: Spread;
  /** Largest RSS growth of the two streamed transfers (upload, download). */
  streamGrowthMiB?: number;
  /** The same for the bare reference streaming the same bytes (V8's share of the growth shows in both). */
  refStreamGrowthMiB?: number;
  /** Latency added at 1 connection: through the proxy minus direct to the backend, ms, per round. */
  addedP50Ms?: Spread;
  addedP99Ms?: Spread;
  /** The same for the bare reference, to read the proxy's figure against. */
  refAddedP50Ms?: Spread;
  refAddedP99Ms?: Spread;
}

type Verdict = 'pass' | 'FAIL' | 'not run' | 'reported';

interface Row {
  /** Name in the machine-readable line. */
  readonly key: string;
  readonly figure: string;
  readonly target: string;
  readonly result: string;
  readonly verdict: Verdict;
  /** Median (or the single value) for the machine-readable line. */
  readonly value: number | undefined;
  /** The per-round spread, for figures measured over rounds. */
  readonly spread?: Spread | undefined;
}

function bound(key: string, figure: string, s: Spread | undefined, at: 'most' | 'least', limit: number): Row {
  const run = s !== undefined && Number.isFinite(s.median);
  return {
    key,
    figure,
    target: `${at === 'most' ? '≤' : '≥'} ${fmt(limit)}`,
    result: run ? fmtSpread(s) : 'n/a',
    verdict: !run ? 'not run' : (at === 'most' ? s.median <= limit : s.median >= limit) ? 'pass' : 'FAIL',
    value: run ? s.median : undefined,
    spread: run ? s : undefined,
  };
}

function absolute(key: string, figure: string, value: number | undefined, limit: number, unit: string, digits = 0, reference?: number): Row {
  const run = value !== undefined && Number.isFinite(value);
  return {
    key,
    figure,
    target: `≤ ${fmt(limit, digits)} ${unit}`,
    result: run ? `${fmt(value, 1)} ${unit}${reference === undefined ? '' : `; reference ${fmt(reference, 1)} ${unit}`}` : 'n/a',
    verdict: !run ? 'not run' : value <= limit ? 'pass' : 'FAIL',
    value: run ? value : undefined,
  };
}

function reported(key: string, figure: string, s: Spread | undefined, against: Spread | undefined): Row {
  const run = s !== undefined && Number.isFinite(s.median);
  return {
    key,
    figure,
    target: 'reported',
    result: run ? `${fmtSpread(s, 3, ' ms')}${against === undefined ? '' : `; reference ${fmt(against.median, 3)} ms`}` : 'n/a',
    verdict: run ? 'reported' : 'not run',
    value: run ? s.median : undefined,
    spread: run ? s : undefined,
  };
}

/**
 * Streaming is judged against the bare reference streaming the same bytes in
 * the same run (issue 21): V8 lets every Node proxy grow by its young
 * generation's worth of buffers, so only what the proxy adds on top counts.
 */
const STREAM_OVER_REFERENCE_MIB = 4;

function streamRow(f: Figures, streamMiB: number): Row {
  const proxy = f.streamGrowthMiB;
  const ref = f.refStreamGrowthMiB;
  const run = proxy !== undefined && ref !== undefined && Number.isFinite(proxy) && Number.isFinite(ref);
  return {
    key: 'stream_growth_mib',
    figure: `streaming ${streamMiB} MiB either way, peak RSS growth, proxy − reference`,
    target: `≤ ${STREAM_OVER_REFERENCE_MIB} MiB`,
    result: run ? `${fmt(proxy - ref, 1)} MiB (proxy ${fmt(proxy, 1)} MiB, reference ${fmt(ref, 1)} MiB)` : 'n/a',
    verdict: !run ? 'not run' : proxy - ref <= STREAM_OVER_REFERENCE_MIB ? 'pass' : 'FAIL',
    value: run ? proxy : undefined,
  };
}

/** Latency added at one connection, p50: at most 1.05 × the reference's (issue 21), medians of the same rounds. */
function addedP50Row(f: Figures): Row {
  const row = reported('added_p50_ms', 'latency added at 1 connection, p50 (proxy − direct), ÷ the reference\'s', f.addedP50Ms, f.refAddedP50Ms);
  const ref = f.refAddedP50Ms?.median;
  if (row.value === undefined || ref === undefined || !Number.isFinite(ref)) return { ...row, target: '≤ 1.05 × reference' };
  return { ...row, target: '≤ 1.05 × reference', result: `${fmt(row.value / ref, 2)} (${row.result})`, verdict: row.value <= 1.05 * ref ? 'pass' : 'FAIL' };
}

/** The issue's targets (issue 12) with this run's results. */
export function targetRows(f: Figures, sessions: number, streamMiB: number): Row[] {
  const many = `${sessions.toLocaleString('en-US')} sessions`;
  const commitMedian = f.commitMs === undefined ? undefined : median(f.commitMs);
  const commitMax = f.commitMs === undefined ? undefined : Math.max(...f.commitMs);
  const commitRun = commitMedian !== undefined && commitMax !== undefined;
  const pgCommitMedian = f.pgCommitMs === undefined ? undefined : median(f.pgCommitMs);
  const pgCommitMax = f.pgCommitMs === undefined ? undefined : Math.max(...f.pgCommitMs);
  const entryPoints = `${sessions.toLocaleString('en-US')} entry points`;
  return [
    bound('rps_ratio', 'requests/s at 1 session, proxy / reference', f.rpsRatio, 'least', 0.95),
    bound('cpu_ratio', 'CPU per request, proxy / reference', f.cpuRatio, 'most', 1.05),
    bound('ws_ratio', 'WebSocket round trips/s, proxy / reference', f.wsRatio, 'least', 0.95),
    absolute('rss_steady_mib', `RSS at ${many}, steady (once idle, largest)`, f.rssSteadyMiB, 120, 'MiB'),
    absolute('rss_peak_mib', `RSS at ${many}, peak during a full re-read`, f.rssPeakMiB, 180, 'MiB'),
    bound('big_over_small', `requests/s at ${many} / at 1 session, ÷ nginx's own`, f.bigOverSmall, 'least', 0.95),
    {
      key: 'commit_median_ms',
      figure: `commit → routed at ${many}`,
      target: 'median ≤ 50 ms, max ≤ 150 ms',
      result: commitRun ? `median ${fmt(commitMedian, 0)} ms, max ${fmt(commitMax, 0)} ms (n=${f.commitMs!.length})` : 'n/a',
      verdict: !commitRun ? 'not run' : commitMedian <= 50 && commitMax <= 150 ? 'pass' : 'FAIL',
      value: commitMedian,
    },
    bound('churn_p99_ratio', `p99 with an insert every 500 ms / without, at ${many}`, f.churnP99Ratio, 'most', 1.5),
    bound('it_over_cookie_1', 'IT routing / cookie routing, requests/s, 1 entry point', f.itOverCookieSmall, 'least', 0.95),
    bound('it_over_cookie_big', `IT routing / cookie routing, requests/s, ${sessions.toLocaleString('en-US')} entry points`, f.itOverCookieBig, 'least', 0.95),
    bound('pg_big_over_small', `PostgreSQL map: requests/s at ${entryPoints} / at 1`, f.pgBigOverSmall, 'least', 0.95),
    {
      key: 'pg_commit_median_ms',
      figure: `PostgreSQL map: commit → routed at ${entryPoints} (issue 11)`,
      target: 'median ≤ 100 ms',
      result: pgCommitMedian !== undefined && pgCommitMax !== undefined ? `median ${fmt(pgCommitMedian, 0)} ms, max ${fmt(pgCommitMax, 0)} ms (n=${f.pgCommitMs!.length})` : 'n/a',
      verdict: pgCommitMedian === undefined ? 'not run' : pgCommitMedian <= 100 ? 'pass' : 'FAIL',
      value: pgCommitMedian,
    },
    bound('pg_stall_p99_ratio', `PostgreSQL map: p99 with a Galaxy removal every second / without, ${entryPoints} (issue 11)`, f.pgStallP99Ratio, 'most', 1.5),
    bound('pg_reread_p99_ratio', `PostgreSQL map: p99 during whole re-reads (connection cut every 2 s) / without, ${entryPoints} (issue 11)`, f.pgRereadP99Ratio, 'most', 1.5),
    streamRow(f, streamMiB),
    addedP50Row(f),
    reported('added_p99_ms', 'latency added at 1 connection, p99 (proxy − direct)', f.addedP99Ms, f.refAddedP99Ms),
  ];
}

export function targetsTable(f: Figures, sessions: number, streamMiB: number): string {
  return table(
    ['figure', 'target', 'result: median (IQR, range) over rounds', 'pass'],
    targetRows(f, sessions, streamMiB).map((r) => [r.figure, r.target, r.result, r.verdict]),
  );
}

/** The last line of the report: `key=value` pairs a script can read. */
export function machineLine(f: Figures, sessions: number, streamMiB: number, extra: Readonly<Record<string, string | number>>): string {
  const rows = targetRows(f, sessions, streamMiB);
  const pairs: string[] = [];
  for (const r of rows) {
    pairs.push(`${r.key}=${r.value === undefined ? 'na' : r.value.toFixed(4)}`);
    if (r.spread !== undefined) pairs.push(`${r.key}_q1=${r.spread.q1.toFixed(4)}`, `${r.key}_q3=${r.spread.q3.toFixed(4)}`);
  }
  const failed = rows.filter((r) => r.verdict === 'FAIL').map((r) => r.key);
  const passed = rows.filter((r) => r.verdict === 'pass').length;
  const notRun = rows.filter((r) => r.verdict === 'not run').map((r) => r.key);
  pairs.push(`passed=${passed}`, `failed=${failed.length === 0 ? 'none' : failed.join(',')}`, `not_run=${notRun.length === 0 ? 'none' : notRun.join(',')}`);
  for (const [k, v] of Object.entries(extra)) pairs.push(`${k}=${v}`);
  return pairs.join(' ');
}
