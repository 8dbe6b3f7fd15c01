import { IncomingMessage, type ClientRequest } from 'node:http';
import type { Route } from '../routing/route-table.js';
import type { AnswerCase } from './answers.js';

/**
 * What the proxy keeps about one request between the request handler and
 * http-proxy's events: one object, made only for a request that is timed
 * (--verbose, metrics) or forwarded. Every field is set in the constructor,
 * so all of them share one shape.
 */
export class RequestState {
  /** Where the request goes, once routed. */
  route: Route | undefined = undefined;
  /** The current request to the container (a retry replaces it). */
  proxyReq: ClientRequest | undefined = undefined;
  /** The request was sent again on a fresh connection (at most once). */
  retried = false;
  /** The credential that chose the route, for the --verbose line (which logs only its tag). */
  credential: string | undefined = undefined;
  /** Why the request was refused, for the --verbose line. */
  refusal: AnswerCase | undefined = undefined;
  /** The request target as log lines show it (an entry point token replaced), when not req.url. */
  logPath: string | undefined = undefined;
  /** The Interactive Tools entry point key the request named, for the --verbose line. */
  entryPoint: string | undefined = undefined;
  /** The client's request target when the router gave the container another (a path route): the browser pages read it. */
  clientUrl: string | undefined = undefined;

  constructor(
    /** When the request arrived (performance.now()), for a timed request; else 0. */
    readonly started: number,
  ) {}
}

// The one slot the proxy adds to a request.
const kState = Symbol('gie.state');
interface StatefulRequest extends IncomingMessage {
  [kState]?: RequestState | undefined;
}

/**
 * The class of the requests the proxy's server receives (http.createServer's
 * `IncomingMessage` option): Node's, with the proxy's slot made with the
 * request. A slot added to a request later, after Node's code has seen it,
 * gives each of Node's stream and event functions one more shape of object to
 * handle, and costs every request in Node's code more than the slot itself.
 */
export class ProxiedRequest extends IncomingMessage implements StatefulRequest {
  [kState]: RequestState | undefined = undefined;
}

/** Gives `req` a new RequestState and returns it. */
export function attachState(req: IncomingMessage, started: number): RequestState {
  const state = new RequestState(started);
  (req as StatefulRequest)[kState] = state;
  return state;
}

/** The state attachState gave `req`, if any. */
export function stateOf(req: IncomingMessage): RequestState | undefined {
  return (req as StatefulRequest)[kState];
}
