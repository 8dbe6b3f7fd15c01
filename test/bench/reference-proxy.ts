/**
 * MEASURING STICK — not the product, never shipped (package.json `files`
 * holds bin and lib only), never used outside `npm run bench`.
 *
 * The barest proxy that can be built on the same core as ours: http-proxy
 * with a keep-alive agent, the `cookie` package and a `Map` from session
 * cookie to container, nothing else (no logging, no timeouts, no header
 * rules, no reloading, no metrics). The bench runs it beside the proxy built
 * from this tree, so that the proxy's figures are judged against what Node +
 * http-proxy can do on this machine in the same minute (see issue 12).
 *
 *   node --import tsx test/bench/reference-proxy.ts <session map.sqlite> <cookie name>
 *
 * Reads Galaxy's `gxproxy2` table once at start, listens on a free 127.0.0.1
 * port and prints `{"port":N,"routes":N}` on stdout.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { parse } from 'cookie';
import httpProxy from 'http-proxy';

const [mapPath, cookieName] = process.argv.slice(2);
if (mapPath === undefined || cookieName === undefined) throw new Error('usage: reference-proxy.ts <map.sqlite> <cookie>');

const routes = new Map<string, string>();
const db = new Database(mapPath, { readonly: true, fileMustExist: true });
for (const row of db.prepare('SELECT key, host, port FROM gxproxy2').iterate() as IterableIterator<{ key: string; host: string; port: number }>) {
  routes.set(row.key, `http://${row.host}:${row.port}`);
}
db.close();

const RAW = { decode: (value: string) => value };
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const proxy = httpProxy.createProxyServer({ agent, ws: true });
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse) {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  } else {
    res.destroy();
  }
});

const targetOf = (req: http.IncomingMessage): string | undefined => {
  const header = req.headers.cookie;
  return header === undefined ? undefined : routes.get(parse(header, RAW)[cookieName] ?? '');
};

const server = http.createServer((req, res) => {
  const target = targetOf(req);
  if (target === undefined) {
    res.writeHead(404);
    res.end();
    return;
  }
  proxy.web(req, res, { target });
});
server.on('upgrade', (req, socket, head) => {
  const target = targetOf(req);
  if (target === undefined) socket.destroy();
  else proxy.ws(req, socket, head, { target, agent: false });
});
server.keepAliveTimeout = 120_000;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port, routes: routes.size })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
