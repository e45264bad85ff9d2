// A port bound ahead of serving (services bind theirs before opening anything): a second bind of it, or a bind
// on an address that is not this machine's, is refused by name, and connections made while the service is still
// starting wait for the server.
import { connect } from 'node:net';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { testLogger } from '@billing/test/harness';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { expect, test } from '@jest/globals';
import { bindListener, ListenError, type Listener, PortInUseError, startServerOn } from '../src/server.ts';

const serveFeatures = (listener: Listener) =>
  startServerOn(listener, {
    services: [CatalogService],
    logger: testLogger,
    routes(router) {
      router.service(CatalogService, { getFeature: () => ({ feature: { key: 'sso', name: 'SSO' } }) });
    },
  });

/** Opens a TCP connection to the port and resolves once it is established. */
const connected = (port: number) =>
  new Promise<ReturnType<typeof connect>>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });

test('binding a port already bound fails with PortInUseError naming the port', async () => {
  const listener = await bindListener('127.0.0.1', 0);
  try {
    const second = bindListener('127.0.0.1', listener.port);
    await expect(second).rejects.toBeInstanceOf(PortInUseError);
    await expect(second).rejects.toThrow(`127.0.0.1:${listener.port}: the port is already in use`);
  } finally {
    await listener.close();
  }
});

test("binding an address that is not this machine's fails with ListenError naming it and the reason", async () => {
  // 192.0.2.1 is reserved for documentation (RFC 5737): no machine has it.
  const bound = bindListener('192.0.2.1', 7101);
  await expect(bound).rejects.toBeInstanceOf(ListenError);
  await expect(bound).rejects.not.toBeInstanceOf(PortInUseError);
  await expect(bound).rejects.toThrow('192.0.2.1:7101: cannot listen: address not available');
});

test('a call made before the server takes the port waits and is answered', async () => {
  const listener = await bindListener('127.0.0.1', 0);
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${listener.port}` }));
  const call = client.getFeature({ key: 'sso' });
  // A connection of its own, established before the server exists, is served too.
  const early = await connected(listener.port);
  const server = serveFeatures(listener);
  try {
    expect((await call).feature?.name).toBe('SSO');
    const response = await new Promise<string>((resolve) => {
      let text = '';
      early.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\r\n\r\n')) resolve(text);
      });
      early.write(
        'POST /billing.catalog.v1.CatalogService/GetFeature HTTP/1.1\r\nHost: localhost\r\n' +
          'Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{"key":"sso"}',
      );
    });
    expect(response.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
  } finally {
    early.destroy();
    await server.shutdown({ graceMs: 1_000 });
  }
});

test('a connection reset while the service starts is dropped, and the server then serves', async () => {
  const listener = await bindListener('127.0.0.1', 0);
  (await connected(listener.port)).resetAndDestroy();
  // By the time a second connection is established, the reset has reached the first one on loopback.
  const bystander = await connected(listener.port);
  const server = serveFeatures(listener);
  try {
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${listener.port}` }));
    expect((await client.getFeature({ key: 'sso' })).feature?.name).toBe('SSO');
  } finally {
    bystander.destroy();
    await server.shutdown({ graceMs: 1_000 });
  }
});
