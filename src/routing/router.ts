import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Route } from './route-table.js';

/**
 * The routing seam: a router turns a request into a route or a refusal
 * reason. The HTTP side knows nothing of cookies, entry points or maps; it
 * asks the router, forwards to the route, and answers a refusal from the
 * table in src/http/answers.ts.
 */

/**
 * Why a request cannot be forwarded. Each reason has exactly one answer
 * (status, body, log message) in src/http/answers.ts; a router that needs a
 * new reason adds it here and there.
 */
export type RefusalReason =
  | 'bad-target' // the request target is neither origin-form nor a usable absolute form
  | 'no-session' // no session cookie, or one the map does not hold
  // Interactive Tools (entry-point-router.ts):
  | 'no-host' // not path-routed, and no Host header to read a key and token from
  | 'unknown-entry-point' // the path or Host names no key, or one the map does not hold
  | 'wrong-token' // the key is known, the token is not its token
  | 'no-target-header' // header mode: no x-interactive-tool-host
  | 'bad-target-header' // header mode: x-interactive-tool-host/-port name no host and port
  | 'target-not-allowed'; // header mode: the target is not on --header-mode-allow

/** Where a routed request goes, and what changes on the way. */
export interface Forward {
  readonly route: Route;
  /**
   * The credential that chose the route (a session cookie value), kept only
   * so that log lines can name it by its tag; never logged itself.
   */
  readonly credential?: string;
  /** The request target the container gets, when it is not the client's. */
  readonly url?: string;
  /** The request target as log lines show it, when the client's holds a credential (an entry point token). */
  readonly logPath?: string;
  /** The Interactive Tools entry point (its key, not a credential) the request named, for log lines. */
  readonly entryPoint?: string;
  /** Changes the headers the container gets (after the hop-by-hop rules). */
  readonly rewriteHeaders?: (headers: IncomingHttpHeaders) => void;
}

/** A request that goes nowhere; `credential` as in Forward, when the request carried one. */
export interface Refused {
  readonly refusal: RefusalReason;
  readonly credential?: string;
  /** As in Forward. */
  readonly logPath?: string;
  /** As in Forward. */
  readonly entryPoint?: string;
}

export type RouteResult = Forward | Refused;

/** A routing mode. */
export interface Router {
  /** How the start line names it, e.g. `session cookie galaxysession`. */
  readonly description: string;
  /**
   * Decides where `req` (an HTTP request or a WebSocket upgrade, its target
   * already in origin form) goes. Never throws, does no I/O, costs O(1) in
   * the size of the map.
   */
  route(req: IncomingMessage): RouteResult;
}

/** True when `result` is a refusal. */
export function isRefusal(result: RouteResult): result is Refused {
  return 'refusal' in result;
}

/**
 * The router in use where the routing mode can change while running (a map
 * that says what it routes by): whoever learns the mode sets `current`, and
 * a request costs one field read.
 */
export class RouterSwitch implements Router {
  constructor(public current: Router) {}

  get description(): string {
    return this.current.description;
  }

  route(req: IncomingMessage): RouteResult {
    return this.current.route(req);
  }
}
