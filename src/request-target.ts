// `scheme://authority` at the start of an absolute-form request target.
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * The request target to send to the container for a target that does not
 * start with `/` (the caller checks that cheaply first).
 *
 * This proxy is not a forward proxy: the container is always the one the
 * session map names. An absolute-form target (`GET http://other-host/x`,
 * which forward proxies receive) is reduced to its path and query, so the
 * named host is neither contacted nor passed on in the request line; the
 * asterisk form is passed on for `OPTIONS *` only. Anything else is refused
 * (undefined → 400).
 */
export function originFormOf(url: string, method: string | undefined): string | undefined {
  if (url === '*') return method === 'OPTIONS' ? url : undefined;
  const authority = ABSOLUTE_FORM.exec(url);
  if (authority === null) return undefined;
  const rest = url.slice(authority[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}
