import type { IncomingMessage } from 'node:http';

/**
 * True when `req` is a person's browser loading a page: a GET or HEAD whose
 * `Accept` prefers `text/html`, with no `X-Requested-With` and no
 * `Sec-Fetch-Mode: cors|no-cors` (a script's fetch). Only these get the HTML
 * pages; every other client keeps the plain-text answers byte for byte.
 * Upgrades never come here (the upgrade path answers on the socket).
 */
export function isBrowserNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const h = req.headers;
  if (h['x-requested-with'] !== undefined || h.upgrade !== undefined) return false;
  const mode = h['sec-fetch-mode'];
  if (mode === 'cors' || mode === 'no-cors') return false;
  return prefersHtml(h.accept);
}

/**
 * True when `text/html` has the highest quality of the media ranges in an
 * `Accept` header (ties count: browsers send `text/html,…,*\/*;q=0.8`) and a
 * quality above 0. No header, or one without `text/html`: false.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined || !/text\/html/i.test(accept)) return false;
  let html = -1;
  let best = 0;
  for (const part of accept.split(',')) {
    const [range, ...params] = part.split(';');
    let q = 1;
    for (const param of params) {
      const [name, value] = param.split('=');
      if (name?.trim().toLowerCase() === 'q') q = Number(value?.trim());
    }
    if (!(q >= 0 && q <= 1)) q = 0; // a malformed weight counts for nothing
    if (range?.trim().toLowerCase() === 'text/html') html = Math.max(html, q);
    else best = Math.max(best, q);
  }
  return html > 0 && html >= best;
}
