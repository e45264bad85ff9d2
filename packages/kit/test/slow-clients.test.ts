// Slow and idle clients are cut off within the server's bounds, on both protocols, and connections are capped
// per process; well-behaved clients keep working: a long Health.Watch is a call in flight, and a client whose
// idle connection was closed reconnects.
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { outcome, testLogger, waitFor } from '@billing/test/harness';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { service as healthService } from 'grpc-health-check';
import { pino } from 'pino';
import { type ServerHandle, startServer } from '../src/server.ts';

const BOUND_MS = 300;
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
/** An empty SETTINGS frame: the rest of a client's connection preface. */
const SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);

/** A 9-byte HTTP/2 frame header. */
function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId, 5);
  return header;
}

let release: () => void = () => undefined;
const released = () =>
  new Promise<void>((resolve) => {
    release = resolve;
  });

let server: ServerHandle;
let port: number;
beforeAll(async () => {
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    services: [CatalogService],
    logger: testLogger,
    headersTimeoutMs: BOUND_MS,
    requestTimeoutMs: BOUND_MS * 2,
    idleTimeoutMs: BOUND_MS * 2,
    routes(router) {
      router.service(CatalogService, {
        async getFeature(req) {
          if (req.key === 'slow') await released();
          return { feature: { key: req.key, name: 'SSO' } };
        },
      });
    },
  });
  port = server.port;
});
afterAll(async () => {
  await server.shutdown({ graceMs: 1_000 });
});

/** A raw TCP connection that sends `bytes`, and what became of it. */
function rawConnection(bytes: string | Buffer, to = port) {
  const seen = { closed: false, received: '' };
  const socket: Socket = connect({ host: '127.0.0.1', port: to }, () => {
    if (bytes.length > 0) socket.write(bytes);
  });
  socket.on('data', (chunk: Buffer) => {
    seen.received += chunk.toString('latin1');
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    seen.closed = true;
  });
  return { seen, socket };
}

const closedByServer = (seen: { closed: boolean }) => waitFor(() => seen.closed, Boolean, 10_000);

describe('connections that never finish their start are closed', () => {
  test.each([
    ['nothing at all', ''],
    ['a partial HTTP/2 preface', 'PRI * HTTP/2'],
    ['only the HTTP/2 preface', Buffer.concat([Buffer.from(PREFACE), SETTINGS])],
    ['a truncated frame header', Buffer.concat([Buffer.from(PREFACE), SETTINGS, Buffer.from([0, 0, 8, 1])])],
    [
      'a HEADERS frame promising 16 KB and sending 5 B',
      Buffer.concat([Buffer.from(PREFACE), SETTINGS, frameHeader(16_384, 0x1, 0x4, 1), Buffer.from('abcde')]),
    ],
    ['HTTP/1.1 headers never finished', 'GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: '],
  ])('%s', async (_name, bytes) => {
    const { seen } = rawConnection(bytes);
    await closedByServer(seen);
  });

  test('an HTTP/1.1 body shorter than its content-length: 408, then closed', async () => {
    const { seen } = rawConnection(
      'POST /billing.catalog.v1.CatalogService/GetFeature HTTP/1.1\r\nHost: localhost\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"key":',
    );
    await closedByServer(seen);
    expect(seen.received.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
  });
});

describe('HTTP/2 requests', () => {
  test('a stream whose request never ends is reset; a call whose handler outlasts the bound is answered', async () => {
    const slowHandler = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }))
      .getFeature({ key: 'slow' })
      .then((res) => res.feature?.key);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const stream = session.request(
        {
          ':method': 'POST',
          ':path': `/${CatalogService.typeName}/${CatalogService.method.getFeature.name}`,
          'content-type': 'application/grpc',
          te: 'trailers',
        },
        { endStream: false },
      );
      stream.write(Buffer.from([0, 0, 0, 0, 10]));
      stream.on('error', () => undefined);
      stream.resume();
      const reset = await new Promise<number>((resolve) => stream.once('close', () => resolve(stream.rstCode)));
      expect(reset).toBe(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
    }
    // The slow call began first, so its request was checked past the bound as well: it had ended.
    release();
    expect(await slowHandler).toBe('slow');
  });
});

describe('idle connections', () => {
  test('an HTTP/2 connection with no call in flight gets GOAWAY and is closed', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const seen = { goaway: false, closed: false };
    session.on('goaway', () => {
      seen.goaway = true;
    });
    session.on('close', () => {
      seen.closed = true;
    });
    session.on('error', () => undefined);
    const stream = session.request({
      ':method': 'POST',
      ':path': `/${CatalogService.typeName}/${CatalogService.method.getFeature.name}`,
      'content-type': 'application/json',
    });
    stream.end('{"key":"sso"}');
    let body = '';
    for await (const chunk of stream) body += chunk;
    expect(JSON.parse(body)).toMatchObject({ feature: { name: 'SSO' } });
    await waitFor(
      () => seen,
      (s) => s.goaway && s.closed,
      10_000,
    );
  });

  test('an HTTP/1.1 keep-alive connection with no request in flight is closed', async () => {
    const { seen } = rawConnection(
      'POST /billing.catalog.v1.CatalogService/GetFeature HTTP/1.1\r\nHost: localhost\r\n' +
        'Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{"key":"sso"}',
    );
    await closedByServer(seen);
    expect(seen.received.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
  });

  test('a grpc-js client whose connection was closed for idleness reconnects and its call succeeds', async () => {
    const Client = grpc.makeGenericClientConstructor(healthService, 'Health');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Check(req: { service: string }, cb: (err: Error | null, res?: { status: string }) => void): void;
    };
    const check = () =>
      new Promise<string>((resolve, reject) =>
        client.Check({ service: 'liveness' }, (err, res) => (err ? reject(err) : resolve(res?.status ?? ''))),
      );
    try {
      expect(await check()).toBe('SERVING');
      const channel = client.getChannel();
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.READY);
      // The server's GOAWAY takes the channel back to IDLE.
      await waitFor(
        () => channel.getConnectivityState(false),
        (state) => state === grpc.connectivityState.IDLE,
        10_000,
      );
      expect(await check()).toBe('SERVING');
    } finally {
      client.close();
    }
  });

  test('a Health.Watch stream is a call in flight: neither the idle nor the request bound cuts it', async () => {
    const Client = grpc.makeGenericClientConstructor(healthService, 'Health');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
    };
    const watched = { statuses: [] as string[], ended: false };
    const call = client.Watch({ service: 'readiness' });
    call.on('data', (res: { status: string }) => watched.statuses.push(res.status));
    call.on('error', () => undefined);
    call.on('close', () => {
      watched.ended = true;
    });
    try {
      await waitFor(
        () => watched.statuses,
        (s) => s.length === 1,
      );
      // A connection that made one call after the watch began is closed for idleness: the watch's connection,
      // older, went through the same checks.
      const bystander = http2.connect(`http://127.0.0.1:${port}`);
      const closed = new Promise<void>((resolve) => bystander.once('close', () => resolve()));
      bystander.on('error', () => undefined);
      const stream = bystander.request({
        ':method': 'POST',
        ':path': `/${CatalogService.typeName}/${CatalogService.method.getFeature.name}`,
        'content-type': 'application/json',
      });
      stream.end('{"key":"sso"}');
      stream.resume();
      await closed;
      expect(watched.ended).toBe(false);
      server.setReady(false);
      await waitFor(
        () => watched.statuses,
        (s) => s.length === 2,
      );
      expect(watched.statuses).toEqual(['SERVING', 'NOT_SERVING']);
    } finally {
      server.setReady(true);
      call.cancel();
      client.close();
    }
  });
});

test('past maxConnections, a new connection is closed at once and the refusal logged once; freed room serves again', async () => {
  const lines: { msg: string; refused?: number; maxConnections?: number }[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  const capped = await startServer({
    host: '127.0.0.1',
    port: 0,
    services: [CatalogService],
    logger,
    maxConnections: 3,
    routes(router) {
      router.service(CatalogService, { getFeature: () => ({ feature: { key: 'sso', name: 'SSO' } }) });
    },
  });
  try {
    const held = [rawConnection('', capped.port), rawConnection('', capped.port), rawConnection('', capped.port)];
    await waitFor(
      () => held,
      (all) => all.every((c) => c.socket.readyState === 'open'),
    );
    const refused = [rawConnection('', capped.port), rawConnection('', capped.port)];
    for (const { seen } of refused) await closedByServer(seen);
    expect(held.some((c) => c.seen.closed)).toBe(false);
    expect(lines.filter((line) => line.msg.startsWith('connection limit reached'))).toEqual([
      expect.objectContaining({ maxConnections: 3, refused: 1 }),
    ]);

    held[0]?.socket.destroy();
    const baseUrl = `http://127.0.0.1:${capped.port}`;
    await waitFor(
      () =>
        outcome(createClient(CatalogService, createConnectTransport({ baseUrl, httpVersion: '1.1' })).getFeature({})),
      (result) => result === 'ok',
      10_000,
    );
    for (const connection of held) connection.socket.destroy();
  } finally {
    await capped.shutdown({ graceMs: 100 });
  }
});
