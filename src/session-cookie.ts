import { parse } from 'cookie';

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
