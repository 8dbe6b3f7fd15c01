import { sessionTag } from '../log.js';
import { activitySecond, activityTime, ACTIVITY_CLOCK, idleSince, type Active, type WebSocketActivity } from '../routing/activity.js';
import type { EntryPointTable } from '../routing/entry-point-table.js';
import type { Route, RouteTable } from '../routing/route-table.js';

/**
 * `GET /routes` on the admin listener: who is active. One object per GIE
 * session and per Interactive Tools entry point this proxy routes, with its
 * container, when it appeared, when bytes last moved and its open WebSockets.
 * No credential: a session is named by the tag the logs use (the session
 * cookie is the key), an entry point by its key (never its token).
 */

/** One route as `/routes` shows it. */
interface RouteActivity {
  /** GIE: the session's tag (as in log lines), not its cookie. */
  readonly session?: string;
  /** Interactive Tools: the entry point's key and key type. */
  readonly key?: string;
  readonly keyType?: string;
  /** `host:port` of the container. */
  readonly target: string;
  /** When this proxy first routed to it (its start, or the map read that added it). */
  readonly appeared: string;
  /** When bytes last moved either way (to the second); null: none since it appeared. */
  readonly lastActive: string | null;
  /** Seconds since lastActive, or since appeared when never active. */
  readonly idleSeconds: number;
  readonly webSockets: number;
}

/** The `/routes` body. */
export interface RoutesReport {
  readonly now: string;
  /** The filter applied, as a time; absent when none. */
  readonly inactiveSince?: string;
  readonly routes: RouteActivity[];
}

/** What the report reads. */
export interface RouteSources {
  readonly sessions: RouteTable;
  readonly entryPoints: EntryPointTable;
  readonly webSockets: WebSocketActivity;
}

/**
 * The routes, optionally only those idle since before `inactiveSinceMs` (a
 * wall-clock time): last active (or, never active, appeared) before it.
 */
export function routesReport(sources: RouteSources, inactiveSinceMs?: number): RoutesReport {
  const counts = sources.webSockets.counts();
  const now = ACTIVITY_CLOCK.second;
  const before = inactiveSinceMs === undefined ? Infinity : activitySecond(inactiveSinceMs);
  const routes: RouteActivity[] = [];
  const add = (route: Route, name: Pick<RouteActivity, 'session' | 'key' | 'keyType'>): void => {
    if (idleSince(route) >= before) return;
    routes.push({ ...name, target: route.label, ...times(route, now), webSockets: counts.get(route) ?? 0 });
  };
  for (const [key, route] of sources.sessions.entries()) add(route, { session: sessionTag(key) });
  for (const entry of sources.entryPoints.entries()) add(entry.target, { key: entry.key, keyType: entry.keyType });
  return { now: new Date(activityTime(now)).toISOString(), ...(inactiveSinceMs === undefined ? {} : { inactiveSince: new Date(inactiveSinceMs).toISOString() }), routes };
}

function times(route: Active, now: number): Pick<RouteActivity, 'appeared' | 'lastActive' | 'idleSeconds'> {
  return {
    appeared: new Date(activityTime(route.appeared)).toISOString(),
    lastActive: route.lastActive < 0 ? null : new Date(activityTime(route.lastActive)).toISOString(),
    idleSeconds: Math.max(0, now - idleSince(route)),
  };
}

/** Routes idle (see idleSince) for longer than `idleMs`: the `gie_proxy_routes_idle` gauge. */
export function idleRouteCount(sources: Pick<RouteSources, 'sessions' | 'entryPoints'>, idleMs: number): number {
  const before = ACTIVITY_CLOCK.second - Math.ceil(idleMs / 1000);
  let n = 0;
  for (const [, route] of sources.sessions.entries()) if (idleSince(route) < before) n++;
  for (const entry of sources.entryPoints.entries()) if (idleSince(entry.target) < before) n++;
  return n;
}

const DURATION = /^(\d{1,9})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** An ISO 8601 date and time, as Date.parse reads it (not the free forms it also accepts). */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * The wall-clock time `inactive_since` names: an ISO 8601 time, or a
 * duration back from `nowMs` (`90s`, `30m`, `1h`, `2d`). Undefined when it is
 * neither.
 */
export function parseInactiveSince(value: string, nowMs: number): number | undefined {
  const duration = DURATION.exec(value);
  if (duration !== null) return nowMs - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS];
  if (!ISO_TIME.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}
