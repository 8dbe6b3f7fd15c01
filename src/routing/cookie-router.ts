import type { IncomingMessage } from 'node:http';
import { parse } from 'cookie';
import type { Route } from './route-table.js';
import type { RouteResult, Router } from './router.js';

// Galaxy stores the cookie value exactly as the browser sends it, so no
// percent-decoding: the raw value is the map key.
const RAW = { decode: (value: string) => value };

/**
 * The value of cookie `name` in a `Cookie` request header, or undefined.
 * Never throws, whatever the header holds.
 */
export function sessionKeyFrom(cookieHeader: string | undefined, name: string): string | undefined {
  // Cheap pre-check keeps cookie-less and foreign-cookie requests off the parser.
  if (cookieHeader === undefined || !cookieHeader.includes(name)) return undefined;
  try {
    const value = parse(cookieHeader, RAW)[name];
    return value === undefined || value.length === 0 ? undefined : value;
  } catch {
    return undefined;
  }
}

const NO_SESSION = Object.freeze({ refusal: 'no-session' as const });

/**
 * Interactive environments (the GIE map): the value of the session cookie is
 * the map key, and the request goes to that session's container unchanged.
 */
export class CookieRouter implements Router {
  readonly description: string;

  constructor(
    private readonly cookieName: string,
    private readonly lookup: (sessionKey: string) => Route | undefined,
  ) {
    this.description = `session cookie ${cookieName}`;
  }

  route(req: IncomingMessage): RouteResult {
    const key = sessionKeyFrom(req.headers.cookie, this.cookieName);
    if (key === undefined) return NO_SESSION;
    const route = this.lookup(key);
    return route === undefined ? { refusal: 'no-session', credential: key } : { route, credential: key };
  }
}
