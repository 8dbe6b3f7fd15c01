import type { Random } from './random.js';

/** What the generated requests may name. */
export interface FuzzTargets {
  /** Session keys routed to the echo container. */
  readonly mapped: readonly string[];
  /** Session key routed to a port nobody listens on (502). */
  readonly dead: string;
  /** Session key routed to a container that accepts and never answers (504). */
  readonly silent: string;
  /** `host:port` of a machine nothing maps to: it must never be contacted. */
  readonly elsewhere: string;
  /**
   * Interactive Tools mode: the keys above are entry point keys (each with
   * its token here), named by path under `prefix` or by Host; no cookies.
   */
  readonly entryPoints?: EntryPointTargets;
}

/** The entry points of an Interactive Tools fuzz run. */
export interface EntryPointTargets {
  /** `--proxyPathPrefix`. */
  readonly prefix: string;
  /** The domain after `<key>-<token>.` in a Host. */
  readonly domain: string;
  /** Each key's token (the credential: none may reach a log line). */
  readonly tokens: ReadonlyMap<string, string>;
}

export type FuzzKind = 'http' | 'websocket' | 'pipeline' | 'garbage';

/** One fuzz case: bytes to send on a fresh connection, and what an unmutated case must get. */
export interface FuzzCase {
  readonly id: number;
  readonly kind: FuzzKind;
  /** Written one after the other, each in its own write. */
  readonly chunks: Buffer[];
  /** Written once the first answer bytes arrived (WebSocket frames after the 101). */
  readonly afterAnswer?: Buffer;
  /** Half-close after writing (the client's FIN). */
  readonly halfClose: boolean;
  /** Cookie values this case sent: none may reach a log line. */
  readonly secrets: string[];
  /** The status an unmutated, well-formed case must get; undefined when any answer is acceptable. */
  readonly expect: number | undefined;
  readonly mutated: boolean;
}

const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH'];
const PATHS = [
  '/',
  '/galaxy/gie_proxy/jupyter/ipython/tree',
  '/galaxy/gie_proxy/jupyter/ipython/api/contents?type=notebook&_=1',
  '/galaxy/gie_proxy/rstudio/auth-do-sign-in',
  '//double//slash/../x',
  '/%2e%2e/%2F%00?x=%ZZ',
];
const ODD_TARGETS = ['*', 'no-slash', '/\u00e9t\u00e9', '/#frag', '/a b', '/tab\there'];
const WEIRD_METHODS = ['TRACE', 'PROPFIND', 'M-SEARCH', 'PRI', 'get', 'X'.repeat(40), 'BREW'];
const WEIRD_VERSIONS = ['HTTP/1.0', 'HTTP/0.9', 'HTTP/2.0', 'HTTP/1.2', 'HTTX/1.1', 'HTTP/1.1 extra', ''];
const SPECIALS = ['\r', '\n', '\0', '\r\n', '\r\n ', ':', ';', '=', '"', '\x7f', '\xff', ',', ' ', '\t', '%'];

type CookieKind = 'mapped' | 'unknown' | 'dead' | 'silent' | 'none' | 'odd';

/** How a request names its container: headers to add, and in IT mode a request target or Host. */
interface Route {
  headers: string[];
  /** The request target (path routing); undefined: any path. */
  target?: string;
  /** The Host (host routing); undefined: Galaxy's host. */
  host?: string;
  status: number | undefined;
}

/** The session cookie (GIE mode) or the entry point (IT mode) a request names. */
function routeFor(r: Random, t: FuzzTargets, secrets: string[]): Route {
  if (t.entryPoints !== undefined) return entryPointFor(r, t, t.entryPoints, secrets);
  const cookie = cookieFor(r, t, secrets);
  return { headers: cookie.header === undefined ? [] : [`Cookie: ${cookie.header}`], status: cookie.status };
}

/** What may follow `<prefix>/<key>/<token>`: the container must get it byte for byte. */
const ENTRY_POINT_RESTS = ['/', '', '/tree', '/api/contents?type=notebook&_=1', '?x=1', '//double//slash/../x', '/%2e%2e/%2F%00?x=%ZZ', '/api/kernels/k/channels?session_id=1'];

/**
 * An entry point named by path (`<prefix>/<key>/<token>/…`) or by Host
 * (`<key>-<token>.ep.interactivetool.<domain>`), and the status a
 * well-formed request naming it gets.
 */
function entryPointFor(r: Random, t: FuzzTargets, ep: EntryPointTargets, secrets: string[]): Route {
  const kind = r.pick<CookieKind>(['mapped', 'mapped', 'mapped', 'unknown', 'unknown', 'dead', 'silent', 'none', 'odd', 'odd']);
  const stranger = r.hex(32);
  secrets.push(stranger);
  const token = (key: string): string => ep.tokens.get(key) ?? stranger;
  let key: string;
  let tok: string;
  let status: number | undefined;
  switch (kind) {
    case 'mapped':
      key = r.pick(t.mapped);
      tok = token(key);
      status = 200;
      break;
    case 'unknown':
      // An unknown key, or a known key with another token: the same 404.
      key = r.chance(0.5) ? r.hex(16) : r.pick(t.mapped);
      tok = stranger;
      status = 404;
      break;
    case 'dead':
      key = t.dead;
      tok = token(key);
      status = 502;
      break;
    case 'silent':
      key = t.silent;
      tok = token(key);
      status = 504;
      break;
    case 'none':
      return { headers: [], target: r.pick(PATHS), status: 404 };
    default: {
      const mapped = r.pick(t.mapped);
      const odd = r.pick([
        `${ep.prefix}/${mapped}`,
        `${ep.prefix}//${token(mapped)}/`,
        `${ep.prefix}/${mapped}/${token(mapped).toUpperCase()}/`,
        // Outside the prefix, or the token inside the key's segment: logged as
        // sent, so these carry a stranger's token, not a real one.
        `${ep.prefix}X/${mapped}/${stranger}/`,
        `${ep.prefix.toUpperCase()}/${mapped}/${stranger}/`,
        `${ep.prefix}/${mapped};x/${token(mapped)}/`,
        `${ep.prefix}/${encodeURIComponent(`${mapped}/${stranger}`)}/`,
      ]);
      const host = r.pick([`${mapped}-${token(mapped)}`, `-${token(mapped)}.${ep.domain}`, `${mapped}${token(mapped)}.${ep.domain}`, `${mapped}-${stranger}-.${ep.domain}`, `${mapped.toUpperCase()}-${token(mapped)}.ep.${ep.domain}`]);
      return r.chance(0.5) ? { headers: [], target: odd, status: undefined } : { headers: [], host, status: undefined };
    }
  }
  const headers = r.chance(0.1) ? [`X-Interactive-Tool-Host: ${t.elsewhere}`, `x-interactive-tool-port: ${t.elsewhere.split(':')[1] ?? '80'}`] : [];
  if (r.chance(0.5)) return { headers, target: `${ep.prefix}/${key}/${tok}${r.pick(ENTRY_POINT_RESTS)}`, status };
  return { headers, host: `${key}-${tok}.ep.interactivetool.${ep.domain}${r.chance(0.2) ? ':443' : ''}`, status };
}

interface Built {
  text: string;
  body: Buffer;
  expect: number | undefined;
  secrets: string[];
  halfClose: boolean;
}

/** A Cookie header (or none) and the status a well-formed request with it gets. */
function cookieFor(r: Random, t: FuzzTargets, secrets: string[]): { header: string | undefined; status: number | undefined } {
  const kind = r.pick<CookieKind>(['mapped', 'mapped', 'mapped', 'unknown', 'unknown', 'dead', 'silent', 'none', 'odd', 'odd']);
  const stranger = r.hex(32);
  secrets.push(stranger);
  switch (kind) {
    case 'mapped': {
      const key = r.pick(t.mapped);
      return { header: r.chance(0.5) ? `galaxysession=${key}` : `_ga=GA1.2.3; galaxysession=${key}; theme=dark`, status: 200 };
    }
    case 'unknown':
      return { header: `galaxysession=${stranger}`, status: 404 };
    case 'dead':
      return { header: `galaxysession=${t.dead}`, status: 502 };
    case 'silent':
      return { header: `galaxysession=${t.silent}`, status: 504 };
    case 'none':
      return { header: r.chance(0.5) ? undefined : `other=${stranger}`, status: 404 };
    case 'odd':
      return {
        header: r.pick([
          `galaxysession`,
          `galaxysession="${stranger}"`,
          `galaxysession=${stranger}; galaxysession=${r.pick(t.mapped)}`,
          `galaxysession=${encodeURIComponent(`${stranger}/=;`)}`,
          `GALAXYSESSION=${stranger}`,
          `galaxysession=${stranger}\u00e9`,
          `;;;=;galaxysession=;${stranger}`,
          `galaxysession=${stranger}${';'.repeat(r.int(50))}`,
        ]),
        status: undefined,
      };
  }
}

function httpRequest(r: Random, t: FuzzTargets, secrets: string[], last = true): Built {
  // Anything unusual makes the expected status unknown; a few choices fix it.
  let odd = false;
  let h2c = false;
  let huge = false;
  const route = routeFor(r, t, secrets);
  let method = r.pick(METHODS);
  if (r.chance(0.05)) {
    method = r.pick(WEIRD_METHODS);
    odd = true;
  }
  const connect = r.chance(0.03);
  let target = route.target ?? r.pick(PATHS);
  const form = r.int(20);
  if (form === 0) {
    target = `http://${t.elsewhere}${target}`; // absolute form: still the mapped container (by cookie)
    if (t.entryPoints !== undefined) odd = true;
  } else if (form === 1) {
    target = r.pick([...ODD_TARGETS, t.elsewhere]);
    odd = true;
  } else if (form === 2) target = `${target}?${'q'.repeat(r.int(6000))}`;
  let version = 'HTTP/1.1';
  if (r.chance(0.04)) {
    version = r.pick(WEIRD_VERSIONS);
    odd = true;
  }
  const headers: string[] = [];
  const hostChoice = r.int(20);
  if (hostChoice === 0) odd = true; // no Host: Node answers 400 for HTTP/1.1
  else headers.push(`Host: ${route.host ?? (hostChoice === 1 ? t.elsewhere : 'galaxy.example.org')}`);
  headers.push(...route.headers);
  if (r.chance(0.3)) headers.push(`Origin: ${r.pick(['https://galaxy.example.org', 'null', 'https://evil.example'])}`);
  if (r.chance(0.2)) headers.push(`X-Forwarded-For: ${r.int(256)}.${r.int(256)}.0.1`, 'X-Forwarded-Proto: https');
  if (r.chance(0.1)) headers.push(`Connection: keep-alive, X-Hop`, 'X-Hop: 1', 'Keep-Alive: timeout=1', 'TE: trailers');
  if (r.chance(0.05)) headers.push('Proxy-Authorization: Basic Zm9vOmJhcg==', 'Proxy-Connection: keep-alive');
  if (r.chance(0.05)) {
    headers.push('Connection: Upgrade', 'Upgrade: h2c'); // a non-WebSocket upgrade: 400
    h2c = true;
  }
  if (r.chance(0.05)) headers.push('Expect: 100-continue');
  for (let i = r.int(4); i > 0; i--) headers.push(`X-Fuzz-${r.hex(4)}: ${r.hex(r.int(40))}`);
  if (r.chance(0.03)) {
    headers.push(`X-Huge: ${'h'.repeat(17_000)}`); // over Node's 16 KiB: 431
    huge = true;
  }
  if (r.chance(0.03)) {
    headers.push(r.pick(['Bad Name: x', 'X-Ctl: a\x01b', ': empty', 'X-Fold: a\r\n folded', 'Content-Length: -1']));
    odd = true;
  }
  let body: Buffer = Buffer.alloc(0);
  let halfClose = false;
  if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
    const size = r.pick([0, 1, 100, 5000, 70_000]);
    body = Buffer.alloc(size, 'b');
    const framing = r.int(10);
    if (framing < 6) headers.push(`Content-Length: ${size}`);
    else if (framing < 9) {
      headers.push('Transfer-Encoding: chunked');
      body = Buffer.concat([size > 0 ? Buffer.from(`${size.toString(16)}\r\n${body.toString()}\r\n`) : Buffer.alloc(0), Buffer.from('0\r\n\r\n')]);
    } else {
      // A body shorter than announced: the client gives up (its FIN) before finishing.
      headers.push(`Content-Length: ${size + 10}`);
      halfClose = true;
      odd = true;
    }
  }
  if (last) headers.push(r.chance(0.9) ? 'Connection: close' : 'Connection: keep-alive');
  if (connect) {
    method = 'CONNECT';
    target = t.elsewhere;
    body = Buffer.alloc(0);
    halfClose = false;
  }
  let expect: number | undefined;
  if (huge && !odd) expect = 431;
  else if (connect && !odd) expect = 405;
  else if (h2c && !odd) expect = 400;
  else if (!odd) expect = route.status;
  const text = `${method} ${target} ${version}\r\n${headers.join('\r\n')}\r\n\r\n`;
  return { text, body, expect, secrets, halfClose };
}

function webSocketFrame(r: Random): Buffer {
  const opcode = r.chance(0.8) ? r.pick([0x1, 0x2, 0x9, 0xa, 0x0]) : r.pick([0x3, 0x7, 0x8, 0xb, 0xf]);
  const fin = r.chance(0.85) ? 0x80 : 0;
  const rsv = r.chance(0.05) ? r.pick([0x40, 0x20, 0x10]) : 0;
  const masked = r.chance(0.9);
  const payload = opcode === 0x1 ? Buffer.from(`fuzz ${r.hex(r.int(64))}`) : r.bytes(r.pick([0, 1, 10, 125, 126, 300]));
  let lengthBytes: Buffer;
  const claim = r.int(20);
  if (claim === 0) lengthBytes = Buffer.from([127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // 2^63-ish
  else if (payload.length < 126) lengthBytes = Buffer.from([payload.length]);
  else lengthBytes = Buffer.from([126, payload.length >> 8, payload.length & 0xff]);
  lengthBytes[0] = (lengthBytes[0] as number) | (masked ? 0x80 : 0);
  const mask = r.bytes(4);
  const body = Buffer.from(payload);
  if (masked) for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i % 4] as number);
  return Buffer.concat([Buffer.from([fin | rsv | opcode]), lengthBytes, masked ? mask : Buffer.alloc(0), body]);
}

function webSocketCase(r: Random, t: FuzzTargets, secrets: string[]): Built & { frames: Buffer } {
  const route = routeFor(r, t, secrets);
  let expect = route.status === 200 ? 101 : route.status;
  const headers = [`Host: ${route.host ?? 'galaxy.example.org'}`, ...route.headers];
  let method = 'GET';
  if (r.chance(0.05)) {
    method = 'POST';
    expect = 400;
  }
  const upgrade = r.int(20);
  if (upgrade === 0) {
    headers.push('Connection: Upgrade', 'Upgrade: h2c');
    expect = 400;
  } else if (upgrade === 1) {
    headers.push('Upgrade: websocket'); // no Connection: upgrade, so a plain request
    expect = undefined;
  } else headers.push(r.pick(['Connection: Upgrade', 'Connection: keep-alive, Upgrade']), r.pick(['Upgrade: websocket', 'Upgrade: WebSocket']));
  if (r.chance(0.9)) headers.push('Sec-WebSocket-Version: 13');
  else {
    headers.push(r.pick(['Sec-WebSocket-Version: 8', 'Sec-WebSocket-Version: x']));
    if (expect === 101) expect = undefined; // the container refuses the handshake
  }
  if (r.chance(0.9)) headers.push(`Sec-WebSocket-Key: ${r.bytes(16).toString('base64')}`);
  else {
    headers.push(r.pick(['Sec-WebSocket-Key: short', 'Sec-WebSocket-Key:']));
    if (expect === 101) expect = undefined;
  }
  if (r.chance(0.2)) headers.push('Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits');
  if (r.chance(0.2)) headers.push('Origin: https://galaxy.example.org');
  const path = route.target ?? r.pick(['/galaxy/gie_proxy/jupyter/ipython/api/kernels/k/channels', '/ws', '/ws?session_id=1']);
  const frames = Buffer.concat(Array.from({ length: 1 + r.int(5) }, () => webSocketFrame(r)));
  const closing = r.chance(0.5) ? Buffer.from([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]) : Buffer.alloc(0);
  return {
    text: `${method} ${path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`,
    body: Buffer.alloc(0),
    frames: Buffer.concat([frames, closing]),
    expect,
    secrets,
    halfClose: true,
  };
}

function garbage(r: Random): Buffer {
  switch (r.int(6)) {
    case 0:
      return r.bytes(1 + r.int(2000));
    case 1:
      return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), r.bytes(100)]); // TLS hello
    case 2:
      return Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'); // HTTP/2 preface
    case 3:
      return Buffer.from('SSH-2.0-OpenSSH_9.6\r\n');
    case 4:
      return Buffer.from(`GET ${r.bytes(50).toString('latin1')} HTTP/1.1\r\n\r\n`, 'latin1');
    default:
      return Buffer.from('\r\n'.repeat(1 + r.int(10)));
  }
}

/** Applies 1–3 random byte-level mutations. Returns the new bytes and whether they were truncated. */
function mutate(r: Random, input: Buffer): { bytes: Buffer; truncated: boolean } {
  let b = Buffer.from(input);
  let truncated = false;
  for (let n = 1 + r.int(3); n > 0 && b.length > 0; n--) {
    const i = r.int(b.length);
    switch (r.int(8)) {
      case 0:
        b[i] = (b[i] as number) ^ (1 << r.int(8));
        break;
      case 1:
        b[i] = r.int(256);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, i), r.bytes(1 + r.int(8)), b.subarray(i)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, i), Buffer.from(r.pick(SPECIALS), 'latin1'), b.subarray(i)]);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + r.int(16))]);
        break;
      case 5: {
        const slice = b.subarray(i, i + 1 + r.int(40));
        b = Buffer.concat([b.subarray(0, i + slice.length), slice, b.subarray(i + slice.length)]);
        break;
      }
      case 6:
        b = b.subarray(0, i);
        truncated = true;
        break;
      default:
        b = Buffer.from(b.toString('latin1').replaceAll('\r\n', '\n'), 'latin1');
    }
  }
  return { bytes: b, truncated };
}

/** Splits bytes into up to four writes at random points. */
function split(r: Random, b: Buffer): Buffer[] {
  const cuts = Array.from({ length: r.int(4) }, () => r.int(b.length + 1)).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, b.length]) {
    if (cut > from) out.push(b.subarray(from, cut));
    from = Math.max(from, cut);
  }
  return out.length > 0 ? out : [b];
}

/** The `id`-th case of a seeded run. */
export function generateCase(r: Random, id: number, t: FuzzTargets): FuzzCase {
  const secrets: string[] = [];
  const roll = r.int(100);
  const kind: FuzzKind = roll < 60 ? 'http' : roll < 82 ? 'websocket' : roll < 92 ? 'pipeline' : 'garbage';
  let bytes: Buffer;
  let expect: number | undefined;
  let halfClose: boolean;
  let afterAnswer: Buffer | undefined;
  if (kind === 'http') {
    const built = httpRequest(r, t, secrets);
    bytes = Buffer.concat([Buffer.from(built.text, 'latin1'), built.body]);
    ({ expect, halfClose } = built);
  } else if (kind === 'websocket') {
    const built = webSocketCase(r, t, secrets);
    expect = built.expect;
    halfClose = built.halfClose;
    if (r.chance(0.5)) bytes = Buffer.concat([Buffer.from(built.text, 'latin1'), built.frames]);
    else {
      bytes = Buffer.from(built.text, 'latin1');
      afterAnswer = built.frames;
    }
  } else if (kind === 'pipeline') {
    const n = 2 + r.int(2);
    const parts = Array.from({ length: n }, (_, i) => httpRequest(r, t, secrets, i === n - 1));
    bytes = Buffer.concat(parts.flatMap((p) => [Buffer.from(p.text, 'latin1'), p.body]));
    if (r.chance(0.3)) bytes = Buffer.concat([bytes, garbage(r)]);
    expect = undefined;
    halfClose = parts.some((p) => p.halfClose);
  } else {
    bytes = garbage(r);
    expect = undefined;
    halfClose = r.chance(0.5);
  }
  let mutated = false;
  if (kind !== 'garbage' && r.chance(0.5)) {
    const m = mutate(r, bytes);
    bytes = m.bytes;
    mutated = true;
    expect = undefined;
    // A truncated request mostly ends with the client's FIN; the rest wait for --headers-timeout.
    if (m.truncated && r.chance(0.8)) halfClose = true;
  }
  return { id, kind, chunks: split(r, bytes), afterAnswer, halfClose, secrets, expect, mutated };
}
