import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rawExchange, request, type Reply } from '../helpers/client.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX as PREFIX, saveAndWait, startItProxy, type ItProxy } from '../helpers/it-proxy.js';
import { freePort } from '../helpers/ports.js';
import { startSpawnedProxy } from '../helpers/spawned-proxy.js';
import { upstreamFor } from '../helpers/upstream.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';
import { PAGES_LOG } from '../../src/pages/browser-pages.js';

// Issue 20: a person's browser gets an HTML page (starting, stopped) where
// every other client keeps its plain answer byte for byte.

/** What Chromium sends for a navigation it makes itself. */
const NAVIGATION = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
};

const NO_ENTRY_POINT = 'No interactive tool is registered for this address.\n';
const NO_SESSION = 'No interactive environment is registered for this session.\n';
const UNREACHABLE = 'The interactive environment for this session is not reachable.\n';

/** The whole plain-text answer as today's proxy writes it on a `Connection: close` request (the Date line aside). */
function plainAnswer(status: string, body: string): string {
  return (
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `cache-control: no-store\r\nDate: *\r\nConnection: close\r\n\r\n${body}`
  );
}

/** One request as raw bytes, its answer with the Date value masked. */
async function raw(port: number, method: string, path: string, headers: Record<string, string>): Promise<string> {
  const lines = Object.entries({ host: 'galaxy.example.org', ...headers, connection: 'close' }).map(([n, v]) => `${n}: ${v}\r\n`);
  const { text } = await rawExchange(port, `${method} ${path} HTTP/1.1\r\n${lines.join('')}\r\n`);
  return text.replace(/^Date: .*$/m, 'Date: *');
}

/** Clients that are not a browser's navigation, each with what makes it so. */
const NOT_NAVIGATIONS: Array<[string, string, Record<string, string>]> = [
  ['curl', 'GET', { accept: '*/*' }],
  ['no Accept', 'GET', {}],
  ['JSON API', 'GET', { accept: 'application/json' }],
  ['html not preferred', 'GET', { accept: 'application/json, text/html;q=0.5' }],
  ['XHR', 'GET', { ...NAVIGATION, 'x-requested-with': 'XMLHttpRequest' }],
  ['fetch cors', 'GET', { ...NAVIGATION, 'sec-fetch-mode': 'cors' }],
  ['fetch no-cors', 'GET', { ...NAVIGATION, 'sec-fetch-mode': 'no-cors' }],
  ['a form POST', 'POST', { ...NAVIGATION, 'content-length': '0' }],
];

function assertPageHeaders(r: Reply, status: number): void {
  assert.equal(r.status, status);
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  const csp = String(r.headers['content-security-policy']);
  assert.match(csp, /^default-src 'none';/);
  assert.doesNotMatch(csp, /unsafe-inline'[^;]*;?\s*$|script-src[^;]*unsafe/);
}

/** Every inline script of `html` is allowed by its hash in `csp`, and nothing else runs. */
function assertScriptsByHash(html: string, csp: string | string[] | undefined): void {
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  assert.ok(scripts.length > 0);
  for (const script of scripts) {
    const hash = createHash('sha256').update(script, 'utf8').digest('base64');
    assert.ok(String(csp).includes(`script-src 'sha256-${hash}'`), 'the retry script is allowed by its hash');
  }
  assert.doesNotMatch(html, /<script[^>]+src=|\son[a-z]+=/i, 'no external script, no event handler attributes');
}

async function waitForRows(proxy: ItProxy, rows: number, from: number): Promise<void> {
  await proxy.proc.logs.waitFor((l) => l.msg === MAP_LOG.reloaded && l.sessions === rows, 10_000, from);
}

test('an unknown key: a browser gets the starting page (503, Retry-After, the retry script by hash), other clients the same plain 404 as before', async (t) => {
  const proxy = await startItProxy(t);
  const url = `${PREFIX}/nokey/secrettoken/tree`;
  const page = await request(proxy.port, { path: url, headers: { host: 'galaxy.example.org', ...NAVIGATION } });
  assertPageHeaders(page, 503);
  assert.equal(page.headers['retry-after'], '1');
  assert.match(page.body, /Your tool is starting/);
  assert.match(page.body, /<a href="\/" rel="noreferrer">Back to Galaxy<\/a>/, 'path routing: Galaxy on the same origin');
  assert.match(page.body, /<template id="gie-proxy-unreachable"[^>]*>[\s\S]*could not be reached[\s\S]*<\/template>/);
  assert.match(page.body, /600000/, 'the script gives up after --starting-page-timeout');
  assert.doesNotMatch(page.body, /secrettoken|nokey/, 'neither token nor key is in the page');
  assertScriptsByHash(page.body, page.headers['content-security-policy']);
  const head = await request(proxy.port, { method: 'HEAD', path: url, headers: { host: 'galaxy.example.org', ...NAVIGATION } });
  assert.equal(head.status, 503);
  assert.equal(head.headers['content-length'], page.headers['content-length']);
  assert.equal(head.body, '');
  for (const [what, method, headers] of NOT_NAVIGATIONS) {
    assert.equal(await raw(proxy.port, method, url, headers), plainAnswer('404 Not Found', NO_ENTRY_POINT), what);
  }
});

test('a wrong token for a known key gets exactly what an unknown key gets; the right token is forwarded', async (t) => {
  const container = await upstreamFor(t, 'c');
  const proxy = await startItProxy(t);
  await saveAndWait(proxy, [{ key: 'k1', token: 't1', host: '127.0.0.1', port: container.port }]);
  const unknown = await request(proxy.port, { path: `${PREFIX}/k2/t1/`, headers: NAVIGATION });
  const wrong = await request(proxy.port, { path: `${PREFIX}/k1/t2/`, headers: NAVIGATION });
  assert.equal(wrong.status, unknown.status);
  assert.equal(wrong.body, unknown.body);
  assert.deepEqual(
    Object.keys(wrong.headers).filter((h) => h !== 'date'),
    Object.keys(unknown.headers).filter((h) => h !== 'date'),
  );
  assert.equal(wrong.headers['content-security-policy'], unknown.headers['content-security-policy']);
  const right = await request(proxy.port, { path: `${PREFIX}/k1/t1/`, headers: NAVIGATION });
  assert.equal(right.status, 200);
  assert.equal(container.seen.length, 1);
});

test('stopped: the removed key with its token gets the stopped page (404, Galaxy link, no script); a wrong token for it the starting page; other clients plain 404', async (t) => {
  const container = await upstreamFor(t, 'c');
  const proxy = await startItProxy(t);
  await saveAndWait(proxy, [{ key: 'k1', token: 't1', host: '127.0.0.1', port: container.port }]);
  const from = proxy.proc.logs.lines.length;
  proxy.map.remove('k1');
  await waitForRows(proxy, 0, from);
  const url = `${PREFIX}/k1/t1/lab`;
  const stopped = await request(proxy.port, { path: url, headers: NAVIGATION });
  assertPageHeaders(stopped, 404);
  assert.match(stopped.body, /This tool has stopped/);
  assert.match(stopped.body, /<a href="\/" rel="noreferrer">Back to Galaxy<\/a>/);
  assert.doesNotMatch(stopped.body, /<script/);
  assert.doesNotMatch(String(stopped.headers['content-security-policy']), /script-src/);
  assert.equal(stopped.headers['retry-after'], undefined);
  const guessed = await request(proxy.port, { path: `${PREFIX}/k1/t2/lab`, headers: NAVIGATION });
  assert.equal(guessed.status, 503, 'a wrong token for a removed key is not told "stopped"');
  assert.match(guessed.body, /Your tool is starting/);
  for (const [what, method, headers] of NOT_NAVIGATIONS) {
    assert.equal(await raw(proxy.port, method, url, headers), plainAnswer('404 Not Found', NO_ENTRY_POINT), what);
  }
});

test('a row whose container refuses: a browser gets the starting page, other clients the plain 502', async (t) => {
  const closed = await freePort();
  const proxy = await startItProxy(t);
  await saveAndWait(proxy, [{ key: 'k1', token: 't1', host: '127.0.0.1', port: closed }]);
  const url = `${PREFIX}/k1/t1/`;
  const page = await request(proxy.port, { path: url, headers: NAVIGATION });
  assertPageHeaders(page, 503);
  assert.match(page.body, /Your tool is starting/);
  assert.match(page.body, /<a href="\/" rel="noreferrer">/, 'the link is derived from the prefix though the target was rewritten');
  for (const [what, method, headers] of NOT_NAVIGATIONS) {
    assert.equal(await raw(proxy.port, method, url, headers), plainAnswer('502 Bad Gateway', UNREACHABLE), what);
  }
});

test("the Galaxy link: derived from a tool's own host (scheme from X-Forwarded-Proto), none for a host of another shape, --galaxy-url escaped", async (t) => {
  const proxy = await startItProxy(t);
  const host = 'k9-t9.ep.interactivetool.galaxy.example.org:8443';
  const plain = await request(proxy.port, { headers: { ...NAVIGATION, host } });
  assert.match(plain.body, /<a href="\/\/galaxy\.example\.org:8443\/" rel="noreferrer">/);
  assert.doesNotMatch(plain.body, /k9|t9/);
  const https = await request(proxy.port, { headers: { ...NAVIGATION, host, 'x-forwarded-proto': 'https' } });
  assert.match(https.body, /<a href="https:\/\/galaxy\.example\.org:8443\/"/);
  const odd = await request(proxy.port, { headers: { ...NAVIGATION, host: 'k9-t9.ep.x."><script>.example.org', 'x-forwarded-proto': 'javascript' } });
  assert.equal(odd.status, 503);
  assert.doesNotMatch(odd.body, /Back to Galaxy|"><script>/, 'a Host that does not pass the pattern gives no link');
  const given = await startItProxy(t, ['--galaxy-url', 'https://usegalaxy.example.org/?a="<b>\'&c=1']);
  const withUrl = await request(given.port, { headers: { ...NAVIGATION, host } });
  assert.match(withUrl.body, /<a href="https:\/\/usegalaxy\.example\.org\/\?a=%22%3Cb%3E%27&#38;c=1" rel="noreferrer">/);
});

test('cookie (GIE) mode: an unknown session gets the starting page, a removed one the stopped page, a refusing container the starting page; other clients plain', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const container = await upstreamFor(t, 'c');
  const closed = await freePort();
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession('live', '127.0.0.1', container.port);
  map.addSession('gone', '127.0.0.1', container.port);
  map.addSession('down', '127.0.0.1', closed);
  const { proc, port } = await startSpawnedProxy(t, map.path);
  const from = proc.logs.lines.length;
  map.removeSession('gone');
  await proc.logs.waitFor((l) => l.msg === MAP_LOG.reloaded && l.sessions === 2, 10_000, from);
  const as = (session: string): Record<string, string> => ({ ...NAVIGATION, cookie: `galaxysession=${session}` });
  const unknown = await request(port, { headers: as('never') });
  assertPageHeaders(unknown, 503);
  assert.match(unknown.body, /<a href="\/" rel="noreferrer">Back to Galaxy/);
  const gone = await request(port, { headers: as('gone') });
  assertPageHeaders(gone, 404);
  assert.match(gone.body, /This tool has stopped/);
  const down = await request(port, { headers: as('down') });
  assertPageHeaders(down, 503);
  assert.equal((await request(port, { headers: as('live') })).status, 200);
  for (const [what, method, headers] of NOT_NAVIGATIONS) {
    assert.equal(await raw(port, method, '/', { ...headers, cookie: 'galaxysession=gone' }), plainAnswer('404 Not Found', NO_SESSION), what);
    assert.equal(await raw(port, method, '/', { ...headers, cookie: 'galaxysession=down' }), plainAnswer('502 Bad Gateway', UNREACHABLE), what);
  }
});

test('--error-pages: a usable template is served, unusable ones fall back to the built-in page with one warning at start', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const dir = join(tmp.dir, 'pages');
  mkdirSync(dir);
  writeFileSync(join(dir, 'starting.html'), '<!DOCTYPE html><html><head><title>Ours</title></head><body><h1>Our tool starts</h1><p>{{ galaxy_link }}</p><p>{{galaxy_url}}</p>{{retry}}</body></html>');
  writeFileSync(join(dir, 'stopped.html'), '<html><body>{{user_name}} stopped</body></html>');
  // unreachable.html is missing
  const proxy = await startItProxy(t, ['--error-pages', dir, '--galaxy-url', 'https://usegalaxy.example.org/']);
  const warnings = proxy.proc.logs.lines.filter((l) => l.msg === PAGES_LOG.templatesUnusable);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].level, 'warn');
  assert.deepEqual(warnings[0].problems, [
    'stopped.html: unknown placeholder {{user_name}} (allowed: {{galaxy_url}}, {{galaxy_link}})',
    'unreachable.html: missing',
  ]);
  const starting = await request(proxy.port, { path: `${PREFIX}/k1/t1/`, headers: NAVIGATION });
  assert.equal(starting.status, 503);
  assert.match(starting.body, /<h1>Our tool starts<\/h1><p><a href="https:\/\/usegalaxy\.example\.org\/" rel="noreferrer">Back to Galaxy<\/a><\/p><p>https:\/\/usegalaxy\.example\.org\/<\/p><template/);
  assert.match(starting.body, /<template id="gie-proxy-unreachable"[^>]*>[\s\S]*could not be reached/, 'the built-in unreachable page rides along');
  assertScriptsByHash(starting.body, starting.headers['content-security-policy']);
  const good = await startItProxy(t, ['--error-pages', dir, '--starting-page-timeout', '5000']);
  const page = await request(good.port, { path: `${PREFIX}/k1/t1/`, headers: NAVIGATION });
  assert.match(page.body, />=5000\)/, 'the script gives up after --starting-page-timeout');
  assertScriptsByHash(page.body, page.headers['content-security-policy']);
});
