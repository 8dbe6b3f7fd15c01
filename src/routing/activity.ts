import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/**
 * Who is active: for each route in the table (a GIE session's container, an
 * Interactive Tools entry point), when bytes last moved through it and how
 * many WebSockets are open on it. The request path pays one field store per
 * request (`route.lastActive = ACTIVITY_CLOCK.second`, a small integer: no
 * allocation, no clock call); WebSockets are followed on their sockets' byte
 * counters once a second, so a busy WebSocket costs nothing per message.
 */

/**
 * The activity clock: whole seconds since this module loaded, on the
 * monotonic clock (a wall-clock step does not reorder activity), moved on by
 * the tick of startActivityClock; `startMs` is that start on the wall clock.
 */
export const ACTIVITY_CLOCK = { second: 0, startMs: Date.now(), startPerfMs: performance.now() };

/** How often the clock moves and open WebSockets are looked at. */
const ACTIVITY_TICK_MS = 1000;

/** The activity fields a route carries (see Route in route-table.ts). */
export interface Active {
  /** The activity second of the last bytes either way; -1: none since it appeared. */
  lastActive: number;
  /** The activity second at which this proxy first routed to it (the map read that added it). */
  readonly appeared: number;
}

/** The wall-clock time (ms since the epoch) of an activity second. */
export function activityTime(second: number): number {
  return ACTIVITY_CLOCK.startMs + second * 1000;
}

/** The activity second of a wall-clock time (ms since the epoch), rounded down. */
export function activitySecond(timeMs: number): number {
  return Math.floor((timeMs - ACTIVITY_CLOCK.startMs) / 1000);
}

/** When `route` was last active, or else when it appeared: what "idle since" means for it. */
export function idleSince(route: Active): number {
  return route.lastActive >= 0 ? route.lastActive : route.appeared;
}

interface FollowedSocket {
  readonly route: Active;
  bytes: number;
}

/**
 * The open WebSockets, each with the route it goes to: counted per route for
 * `/routes`, and looked at once a tick, so that a WebSocket whose byte
 * counters moved makes its route active at that second.
 */
export class WebSocketActivity {
  private readonly sockets = new Map<Socket, FollowedSocket>();

  /** Follows `socket` (a client socket after its 101) until it closes. */
  opened(socket: Socket, route: Active): void {
    route.lastActive = ACTIVITY_CLOCK.second;
    this.sockets.set(socket, { route, bytes: socket.bytesRead + socket.bytesWritten });
    socket.once('close', () => {
      this.sockets.delete(socket);
      route.lastActive = ACTIVITY_CLOCK.second;
    });
  }

  /** Marks active the routes of WebSockets whose bytes moved since the last look. */
  sweep(): void {
    for (const [socket, followed] of this.sockets) {
      const bytes = socket.bytesRead + socket.bytesWritten;
      if (bytes !== followed.bytes) {
        followed.bytes = bytes;
        followed.route.lastActive = ACTIVITY_CLOCK.second;
      }
    }
  }

  /** Open WebSockets per route. */
  counts(): Map<Active, number> {
    const counts = new Map<Active, number>();
    for (const { route } of this.sockets.values()) counts.set(route, (counts.get(route) ?? 0) + 1);
    return counts;
  }
}

const sweepers = new Set<WebSocketActivity>();
let ticker: NodeJS.Timeout | undefined;

/**
 * Keeps the activity clock moving while any daemon in this process runs (one
 * shared tick, unref'd), and looks at `webSockets` each tick. Returns the
 * function that stops this one's part.
 */
export function startActivityClock(webSockets: WebSocketActivity): () => void {
  sweepers.add(webSockets);
  ticker ??= setInterval(tick, ACTIVITY_TICK_MS).unref();
  tick();
  return () => {
    sweepers.delete(webSockets);
    if (sweepers.size === 0 && ticker !== undefined) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };
}

function tick(): void {
  ACTIVITY_CLOCK.second = Math.floor((performance.now() - ACTIVITY_CLOCK.startPerfMs) / 1000);
  for (const s of sweepers) s.sweep();
}
