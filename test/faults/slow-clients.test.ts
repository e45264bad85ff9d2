// Slow and broken clients against a service process with small bounds (IDLE_TIMEOUT, REQUEST_TIMEOUT, and a
// MAX_CONNECTIONS of its own): connections that stop after the HTTP/2 preface, half-way through it, inside a frame
// header or a HEADERS frame, requests whose body never ends (HTTP/2 and HTTP/1.1), and a connection left idle
// after a call are each closed within their bound; past MAX_CONNECTIONS a new connection is closed at once. Every
// connection is opened at the same time, so the file takes about as long as its longest bound.
import http2 from 'node:http2';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import {
  createTestDatabase,
  type ServiceProcess,
  startServiceProcess,
  type TestDatabase,
  waitFor,
} from '@billing/test/harness';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { healthOf, readinessOf } from './platform.ts';
import {
  checkHealthOnce,
  EMPTY_SETTINGS,
  envelope,
  frameHeader,
  type HeldFor,
  HTTP2_PREFACE,
  heldAfterWriting,
} from './raw-protocols.ts';

/** IDLE_TIMEOUT of the service. */
const IDLE_TIMEOUT_MS = 1_000;
/** REQUEST_TIMEOUT of the service. */
const REQUEST_TIMEOUT_MS = 2_000;
/** The server's bound on a connection's first bytes and first request headers (ServeOptions.headersTimeoutMs). */
const HEADERS_TIMEOUT_MS = 10_000;
/** What a close may take past its bound on a loaded machine: enough to show the bound, not the client, ended it. */
const MARGIN_MS = 3_000;

const LIST_EVENTS = `/${UsageService.typeName}/${UsageService.method.listEvents.name}`;

let database: TestDatabase;
let usage: ServiceProcess;

/** Starts usage with `env` on the test's database, alone (the in-process bus), and waits until it is ready. */
async function startUsage(env: Record<string, string>): Promise<ServiceProcess> {
  const started = await startServiceProcess('usage', { USAGE_DATABASE_URL: database.url, NATS_URL: '', ...env });
  // Each check on a connection of its own, closed after it, so that the service holds no connection of the test's.
  await waitFor(
    () => checkHealthOnce(started.baseUrl, 'readiness').catch(() => 'unreachable'),
    (answer) => answer === 'SERVING',
    30_000,
  );
  return started;
}

beforeAll(async () => {
  database = await createTestDatabase('slow_clients');
  usage = await startUsage({ IDLE_TIMEOUT: `${IDLE_TIMEOUT_MS}ms`, REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MS}ms` });
}, 60_000);

afterAll(async () => {
  await usage?.kill();
  await database?.drop();
});

/** How long an HTTP/2 stream whose request body never ends stays open: until the server resets or answers it. */
function streamHeldWithUnfinishedBody(limitMs: number): Promise<HeldFor> {
  return new Promise((resolve) => {
    const session = http2.connect(usage.baseUrl);
    session.on('error', () => undefined);
    const stream = session.request({
      ':method': 'POST',
      ':path': LIST_EVENTS,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
    });
    // An envelope that promises 100 bytes, and 10 of them.
    const started = Date.now();
    stream.write(envelope(Buffer.alloc(100)).subarray(0, 15));
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    const timer = setTimeout(() => {
      session.destroy();
      resolve('open');
    }, limitMs);
    stream.on('close', () => {
      clearTimeout(timer);
      session.destroy();
      resolve(Date.now() - started);
    });
  });
}

/** How long an HTTP/2 connection stays open after its one call has answered, with no call in flight. */
function sessionHeldIdle(limitMs: number): Promise<HeldFor> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(usage.baseUrl);
    session.on('error', () => undefined);
    const stream = session.request({
      ':method': 'POST',
      ':path': LIST_EVENTS,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
    });
    stream.on('data', () => undefined);
    stream.on('error', reject);
    let answeredAt = 0;
    stream.on('end', () => {
      answeredAt = Date.now();
    });
    stream.end(envelope(new Uint8Array()));
    const timer = setTimeout(() => {
      session.destroy();
      resolve('open');
    }, limitMs);
    session.on('close', () => {
      clearTimeout(timer);
      resolve(answeredAt === 0 ? 0 : Date.now() - answeredAt);
    });
  });
}

describe('a connection is closed within its bound', () => {
  // Every connection starts at once; each test waits for its own.
  let held: Record<string, Promise<HeldFor>>;
  const within = (bound: number) => bound + MARGIN_MS;

  beforeAll(() => {
    const port = usage.port;
    held = {
      prefaceOnly: heldAfterWriting(
        port,
        Buffer.concat([HTTP2_PREFACE, EMPTY_SETTINGS]),
        within(HEADERS_TIMEOUT_MS) + 5_000,
      ),
      partialPreface: heldAfterWriting(port, HTTP2_PREFACE.subarray(0, 16), within(HEADERS_TIMEOUT_MS) + 5_000),
      truncatedFrameHeader: heldAfterWriting(
        port,
        Buffer.concat([HTTP2_PREFACE, EMPTY_SETTINGS, frameHeader(16_384, 0x1, 0x4, 1).subarray(0, 4)]),
        within(HEADERS_TIMEOUT_MS) + 5_000,
      ),
      // A HEADERS frame (END_HEADERS) of stream 1 that promises 16 KiB and brings 5 bytes.
      shortHeadersFrame: heldAfterWriting(
        port,
        Buffer.concat([
          HTTP2_PREFACE,
          EMPTY_SETTINGS,
          frameHeader(16_384, 0x1, 0x4, 1),
          Buffer.from([0x82, 0x86, 0x84, 0x41, 0x8a]),
        ]),
        within(HEADERS_TIMEOUT_MS) + 5_000,
      ),
      http1ShortBody: heldAfterWriting(
        port,
        Buffer.from(
          `POST ${LIST_EVENTS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"customerExternalId"`,
        ),
        within(REQUEST_TIMEOUT_MS) + 5_000,
      ),
      http2UnfinishedBody: streamHeldWithUnfinishedBody(within(REQUEST_TIMEOUT_MS) + 5_000),
      idleAfterCall: sessionHeldIdle(within(IDLE_TIMEOUT_MS) + 5_000),
    };
  });

  test.each([
    ['sent only the HTTP/2 preface', 'prefaceOnly', HEADERS_TIMEOUT_MS],
    ['sent part of the HTTP/2 preface', 'partialPreface', HEADERS_TIMEOUT_MS],
    ['stopped inside a frame header', 'truncatedFrameHeader', HEADERS_TIMEOUT_MS],
    ['sent 5 bytes of a HEADERS frame that promised 16 KiB', 'shortHeadersFrame', HEADERS_TIMEOUT_MS],
    ['sent an HTTP/1.1 body shorter than its content-length', 'http1ShortBody', REQUEST_TIMEOUT_MS],
  ])(
    'a client that %s is cut off',
    async (_what, key, bound) => {
      const after = await held[key];
      expect(after).not.toBe('open');
      expect(after).toBeLessThan(within(bound));
    },
    30_000,
  );

  test('an HTTP/2 call whose body never ends is ended within REQUEST_TIMEOUT', async () => {
    const after = await held.http2UnfinishedBody;
    expect(after).not.toBe('open');
    expect(after).toBeLessThan(within(REQUEST_TIMEOUT_MS));
  }, 30_000);

  test('a connection with no call in flight is closed after IDLE_TIMEOUT', async () => {
    const after = await held.idleAfterCall;
    expect(after).not.toBe('open');
    expect(after).toBeLessThan(within(IDLE_TIMEOUT_MS));
  }, 30_000);

  test('the service still answers calls', async () => {
    await Promise.all(Object.values(held));
    const health = healthOf(usage.baseUrl);
    expect(await readinessOf(health, 'usage')).toEqual(['SERVING', 'SERVING', 'SERVING']);
    expect(usage.running()).toBe(true);
  }, 30_000);
});

describe('past MAX_CONNECTIONS', () => {
  const MAX_CONNECTIONS = 4;
  let capped: ServiceProcess;

  beforeAll(async () => {
    capped = await startUsage({ MAX_CONNECTIONS: String(MAX_CONNECTIONS) });
  }, 60_000);

  afterAll(async () => {
    await capped?.kill();
  });

  test('a connection past the cap is closed at once, and one is accepted again once another closes', async () => {
    // Established HTTP/2 connections up to the cap, each with one call answered, held open. A connection of an
    // earlier check may be closing still, and take one of the places for a moment: a connection refused then is
    // opened again.
    const sessions: http2.ClientHttp2Session[] = [];
    const openOne = () =>
      new Promise<http2.ClientHttp2Session | undefined>((resolve) => {
        const session = http2.connect(capped.baseUrl);
        session.on('error', () => resolve(undefined));
        session.on('close', () => resolve(undefined));
        const stream = session.request({
          ':method': 'POST',
          ':path': '/grpc.health.v1.Health/Check',
          'content-type': 'application/grpc+proto',
          te: 'trailers',
        });
        stream.on('data', () => undefined);
        stream.on('error', () => resolve(undefined));
        stream.on('end', () => resolve(session));
        stream.end(envelope(new Uint8Array()));
      });
    try {
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const session = await waitFor(openOne, (s) => s !== undefined, 10_000);
        if (session) sessions.push(session);
      }
      // Another connection, a valid one, is closed well before any bound of a slow client would close it.
      const after = await heldAfterWriting(capped.port, Buffer.concat([HTTP2_PREFACE, EMPTY_SETTINGS]), 5_000);
      expect(after).not.toBe('open');
      expect(after).toBeLessThan(MARGIN_MS);
      sessions.pop()?.destroy();
      // With a place free, a new connection is served.
      expect(
        await waitFor(
          () => checkHealthOnce(capped.baseUrl, 'liveness').catch(() => 'refused'),
          (answer) => answer === 'SERVING',
          10_000,
        ),
      ).toBe('SERVING');
    } finally {
      for (const session of sessions) session.destroy();
    }
  }, 60_000);
});
