import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { attachState, ProxiedRequest, stateOf } from '../../../src/http/request-state.js';
import { haveSameShape } from '../../helpers/v8-shapes.js';

test("ProxiedRequest: a request given state keeps the shape of one without (the slot is made with the request)", async (t) => {
  const seen: IncomingMessage[] = [];
  const server = http.createServer({ IncomingMessage: ProxiedRequest }, (req, res) => {
    assert.ok(req instanceof ProxiedRequest);
    assert.equal(stateOf(req), undefined, 'no state until attached');
    // The first request is forwarded (state attached), the second refused (none).
    if (seen.length === 0) attachState(req, 0).retried = true;
    seen.push(req);
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve, reject) => {
      http.get({ port, host: '127.0.0.1', agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
    });
  }
  const [forwarded, refused] = seen as [IncomingMessage, IncomingMessage];
  assert.equal(stateOf(forwarded)?.retried, true);
  assert.equal(stateOf(refused), undefined);
  assert.ok(haveSameShape(forwarded, refused), 'one hidden class for both requests');
  // What a slot added later does (a plain IncomingMessage): two shapes.
  const plain = [new http.IncomingMessage(forwarded.socket), new http.IncomingMessage(forwarded.socket)] as const;
  attachState(plain[0], 0);
  assert.ok(!haveSameShape(plain[0], plain[1]), 'a plain request given state changes shape');
});
