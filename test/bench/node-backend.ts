/**
 * The benchmark's Node container stand-in, run as its own process so its CPU
 * is not the proxy's or the load generator's:
 *   GET  /download?bytes=N  streams N bytes (with backpressure)
 *   POST /upload            reads the body, answers with its size
 *   WebSocket upgrade       echoes every message
 *   anything else           200 "ok" (the fast backend when nginx is missing)
 * Prints `{"port":N}` on stdout once listening on 127.0.0.1.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { writeBytes } from './pump.js';

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/download')) {
    const bytes = Number(new URL(url, 'http://x').searchParams.get('bytes') ?? 0);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
    writeBytes(res, bytes);
    return;
  }
  if (url.startsWith('/upload')) {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => res.end(`${bytes}\n`));
    return;
  }
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
  res.end('ok\n');
});
// Never close a pooled connection from under the proxy during a round.
server.keepAliveTimeout = 120_000;
server.requestTimeout = 0;

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
