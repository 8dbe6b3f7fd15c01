import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MAIN_JS } from '../helpers/spawned-proxy.js';
import { entryPointKey, SqlAlchemyItWriter, type EntryPointWrite } from '../helpers/galaxy-it-map.js';
import { REQUEST_PATH, spread, type BenchContext, type Spread } from './context.js';
import { interleavedRounds, ratios, type LoadTarget, type Round } from './rounds.js';
import { gxItProxy, skipped, startGxItProxy, type RunningPeer } from './peers.js';
import { memory, waitUntilIdle } from './proc-stats.js';
import { startProxy, type RunningProxy } from './servers.js';

/** The map size gx-it-proxy 0.2.3 is compared at besides 1: it scans the whole map per request, so 100,000 would measure only that. */
export const PEER_ENTRY_POINTS = 10_000;

/** gravity's `--proxyPathPrefix` with Galaxy's defaults. */
const IT_PREFIX = '/interactivetool/ep';

/**
 * Interactive Tools routing (issue 10) against cookie routing: requests/s of
 * the proxy routing by entry point — by path (`<prefix>/<key>/<token>/…`)
 * and by host (`<key>-<token>.<domain>`) — and of the same proxy routing by
 * cookie, interleaved, at 1 and at `sessions` entry points, on maps written
 * with Galaxy ≥ 24.2's statements. The figure judged is the lower of the two
 * (path, host). A PostgreSQL map (issue 11) plugs in beside it the same way:
 * a large-map proxy on the PostgreSQL map, with commit-latency.ts and
 * churn.ts run against it (they take a writer).
 */
export interface ItRoutingResult {
  readonly figures: { readonly small: Spread; readonly big: Spread } | undefined;
  readonly report: string;
  readonly results?: Map<string, Round[]>;
  /** Ours ÷ gx-it-proxy 0.2.3, by figure key (machine line), when it is installed. */
  readonly peer?: ReadonlyMap<string, { readonly label: string; readonly values: number[] }>;
  /** Why there are no gx-it-proxy figures, when there are none. */
  readonly peerSkipped?: string;
}

/** True when the built CLI routes Interactive Tools (its --help names the path-prefix flag). */
export function cliHasItRouting(): boolean {
  const { stdout } = spawnSync(process.execPath, [MAIN_JS, '--help'], { encoding: 'utf8' });
  return /--proxyPathPrefix/.test(stdout ?? '');
}

export interface ItSetup {
  readonly backendPort: number;
  readonly sessions: number;
  /** The cookie-routing proxies to compare with (1 session and the large map), and the cookie value they route. */
  readonly cookieSmall: RunningProxy;
  readonly cookieBig: RunningProxy | undefined;
  readonly key: string;
}

export async function itRoutingPhase(ctx: BenchContext, setup: ItSetup): Promise<ItRoutingResult> {
  if (!cliHasItRouting()) {
    const report = 'not run: the proxy built from this tree has no Interactive Tools routing (issue 10)';
    ctx.progress(`  ${report}`);
    return { figures: undefined, report };
  }
  const fast = entryPointKey(0);
  const entry = (i: number, port: number): EntryPointWrite => ({ ...entryPointKey(i), host: '127.0.0.1', port });
  const writeMap = (name: string, count: number): string => {
    const map = new SqlAlchemyItWriter(join(ctx.resources.dir, `${name}.sqlite`));
    try {
      // The fast backend's entry point first, the others on a port nothing listens on (never requested).
      map.saveMany((function* () {
        yield entry(0, setup.backendPort);
        for (let i = 1; i < count; i++) yield entry(i, 9);
      })());
    } finally {
      map.close();
    }
    return map.path;
  };
  const start = async (name: string, count: number): Promise<RunningProxy> => {
    return startProxy(ctx.resources, {
      name,
      sessionsPath: writeMap(name, count),
      expectedRoutes: count,
      cores: ctx.pinning.servers,
      cpuProfDir: ctx.cpuProfDir,
      extraArgs: ['--proxyPathPrefix', IT_PREFIX],
    });
  };
  const big = setup.cookieBig === undefined ? undefined : setup.sessions;
  const itSmall = await start('it-1', 1);
  const itBig = big === undefined ? undefined : await start(`it-${big}`, big);
  const path = `${IT_PREFIX}/${fast.key}/${fast.token}${REQUEST_PATH}`;
  const host = `${fast.key}-${fast.token}.ep.interactivetool.galaxy.example.org`;
  // Browsers send Galaxy's cookies to the Interactive Tools too: the same Cookie header everywhere.
  const on = (name: string, p: { port: number; pid: number }, shape: Partial<LoadTarget> = {}): LoadTarget => ({ name, port: p.port, cpuPid: p.pid, key: setup.key, ...shape });
  const targets = [on('IT path 1', itSmall, { path }), on('IT host 1', itSmall, { host }), on('cookie 1', setup.cookieSmall)];
  if (itBig !== undefined && setup.cookieBig !== undefined) {
    targets.push(on(`IT path ${big}`, itBig, { path }), on(`IT host ${big}`, itBig, { host }), on(`cookie ${big}`, setup.cookieBig));
  }
  // gx-it-proxy 0.2.3 on the same kind of maps, beside ours at the same sizes.
  const peer = gxItProxy();
  const peers: RunningPeer[] = [];
  const extraOurs: RunningProxy[] = [];
  const peerSizes = [1, PEER_ENTRY_POINTS];
  if (peer.main !== undefined) {
    for (const n of peerSizes) {
      const gx = await startGxItProxy(ctx.resources, peer, `gx-it-proxy-${n}`, writeMap(`gx-it-proxy-${n}`, n), IT_PREFIX, path, ctx.pinning.servers);
      peers.push(gx);
      targets.push(on(`gx-it-proxy path ${n}`, gx, { path }), on(`gx-it-proxy host ${n}`, gx, { host }));
      if (n !== 1 && n !== big) {
        const ours = await start(`it-${n}`, n);
        extraOurs.push(ours);
        targets.push(on(`IT path ${n}`, ours, { path }), on(`IT host ${n}`, ours, { host }));
      }
    }
  }
  const rounds = Math.max(3, Math.ceil(ctx.rounds / 2));
  const results = await interleavedRounds(ctx, targets, ctx, rounds);
  const get = (name: string): Round[] => results.get(name) ?? [];
  const lines: string[] = [];
  const judge = (n: string | number): Spread => {
    const byPath = ratios(get(`IT path ${n}`), get(`cookie ${n}`), (r) => r.rps);
    const byHost = ratios(get(`IT host ${n}`), get(`cookie ${n}`), (r) => r.rps);
    const [p, h] = [spread(byPath), spread(byHost)];
    lines.push(`requests/s, IT path / cookie, ${n} entry points: ${p.median.toFixed(2)} (range ${p.min.toFixed(2)}–${p.max.toFixed(2)})`);
    lines.push(`requests/s, IT host / cookie, ${n} entry points: ${h.median.toFixed(2)} (range ${h.min.toFixed(2)}–${h.max.toFixed(2)})`);
    return p.median <= h.median ? p : h;
  };
  const small = judge(1);
  const bigSpread = big === undefined ? spread([]) : judge(big);
  const peerFigures = new Map<string, { label: string; values: number[] }>();
  if (peers.length > 0) {
    for (const n of peerSizes) {
      for (const how of ['path', 'host'] as const) {
        const ours = get(`IT ${how} ${n}`);
        const theirs = get(`gx-it-proxy ${how} ${n}`);
        peerFigures.set(`gxit_rps_ratio_${how}_${n}`, { label: `requests/s by ${how}, ours ÷ gx-it-proxy 0.2.3, ${n} entry points`, values: ratios(ours, theirs, (r) => r.rps) });
        peerFigures.set(`gxit_cpu_ratio_${how}_${n}`, { label: `CPU per request by ${how}, ours ÷ gx-it-proxy 0.2.3, ${n} entry points`, values: ratios(ours, theirs, (r) => r.cpuUs) });
      }
    }
    // RSS once idle, at the larger size: ours (this phase's proxy at that size) and gx-it-proxy's.
    const oursAtPeerSize = PEER_ENTRY_POINTS === big ? itBig : extraOurs[0];
    const gxAtPeerSize = peers[peers.length - 1];
    if (oursAtPeerSize !== undefined && gxAtPeerSize !== undefined) {
      await waitUntilIdle(oursAtPeerSize.pid);
      await waitUntilIdle(gxAtPeerSize.pid);
      const [a, b] = [memory(oursAtPeerSize.pid).rssMiB, memory(gxAtPeerSize.pid).rssMiB];
      peerFigures.set(`gxit_rss_ratio_${PEER_ENTRY_POINTS}`, { label: `RSS once idle, ours ÷ gx-it-proxy 0.2.3, ${PEER_ENTRY_POINTS} entry points (${a.toFixed(1)} / ${b.toFixed(1)} MiB)`, values: [a / b] });
    }
  }
  for (const p of [itSmall, itBig, ...extraOurs]) if (p !== undefined) await ctx.resources.stop(p.proxy.child);
  for (const p of peers) await ctx.resources.stop(p.child);
  const peerPart = peers.length > 0 ? { peer: peerFigures } : { peerSkipped: skipped(peer) };
  return { figures: { small, big: bigSpread }, report: lines.join('\n'), results, ...peerPart };
}
