// A caller's deadline through a real server, on every protocol's header: the call answers DEADLINE_EXCEEDED when
// it passes, whatever its handler is doing, and the call's database work is cancelled on the server and rolled
// back; work run outside the call's deadline is not. The clients here set the deadline header only and keep no
// timer of their own, so every DEADLINE_EXCEEDED seen is the server's answer.

import { randomUUID } from 'node:crypto';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { Health, HealthCheckResponse_ServingStatus } from '@billing/proto/health/v1/health_pb';
import { createTestDatabase, rpcError, type TestDatabase, testLogger, waitFor } from '@billing/test/harness';
import { Code, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type Database, openDatabase, queryBound } from '../src/db.ts';
import { callDeadline, deadlineInterceptor, withoutCallDeadline } from '../src/deadline.ts';
import { errorInterceptor } from '../src/errors.ts';
import { type ServerHandle, startServer } from '../src/server.ts';

let database: TestDatabase;
let db: Database;
let server: ServerHandle;
let baseUrl: string;
// Handlers that wait for the test to end, and what the handlers that outlive their call saw.
const stuck: (() => void)[] = [];
const outcomes = new Map<string, Promise<unknown>>();

const NOTES = [{ name: '0001_note', statements: ['create table note (id text primary key, body text not null)'] }];

/** The handler's work for a key `<what>:<marker>`. */
async function work(what: string, marker: string): Promise<void> {
  if (what === 'sleep') {
    // A transaction that writes, then runs a statement far longer than any deadline of the tests.
    await db.transaction(async (em) => {
      await queryBound(em, 'insert into note (id, body) values ($1, $2)', [marker, 'sleep']);
      await queryBound(em, `select pg_sleep(30) as "${marker}"`, []);
    });
  } else if (what === 'stuck') {
    await new Promise<void>((resolve) => stuck.push(resolve));
  } else if (what === 'late') {
    // Waits, without the database, for the deadline to pass, then writes.
    const deadline = callDeadline();
    await new Promise((resolve) => deadline?.addEventListener('abort', resolve, { once: true }));
    const write = queryBound(db.fork(), 'insert into note (id, body) values ($1, $2)', [marker, 'late']);
    outcomes.set(marker, write);
    await write;
  } else if (what === 'detached') {
    // Work for several calls, run outside this one's deadline: it commits though the call answered earlier.
    const shared = withoutCallDeadline(() =>
      db.transaction(async (em) => {
        await queryBound(em, 'select pg_sleep(1)', []);
        await queryBound(em, 'insert into note (id, body) values ($1, $2)', [marker, 'detached']);
      }),
    );
    outcomes.set(marker, shared);
    await shared;
  }
}

beforeAll(async () => {
  database = await createTestDatabase('deadline');
  // A database timeout longer than the test, so that only a cancellation can stop a statement.
  db = await openDatabase({
    service: 'notes',
    url: database.url,
    entities: [],
    migrations: NOTES,
    logger: testLogger,
    timeoutMs: 120_000,
  });
  await db.migrate();
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    services: [CatalogService],
    logger: testLogger,
    interceptors: [errorInterceptor('billing.notes', testLogger), deadlineInterceptor(testLogger)],
    routes(router) {
      router.service(CatalogService, {
        async getFeature(req) {
          const [what = '', marker = ''] = req.key.split(':');
          await work(what, marker);
          return { feature: { key: req.key, name: 'done' } };
        },
      });
    },
  });
  baseUrl = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  for (const release of stuck) release();
  await server.shutdown({ graceMs: 1_000 });
  await db.close();
  await database.drop();
});

/** A client sending `header` with every call; it keeps no timer of its own. */
function clientWith(header: Record<string, string>, transport = createGrpcTransport({ baseUrl })) {
  const client = createClient(CatalogService, transport);
  return (key: string) => client.getFeature({ key }, { headers: header });
}

/** Fails with `what` if `promise` has not settled within `ms`: the generous bound of "did not hang". */
function notHanging<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

async function count(sql: string, params: unknown[]): Promise<number> {
  const [row] = await queryBound<{ n: string }>(db.fork(), sql, params);
  return Number(row?.n);
}

const notes = (marker: string) => count('select count(*) as n from note where id = $1', [marker]);

describe('a deadline shorter than the work', () => {
  test.each([
    ['gRPC', () => clientWith({ 'grpc-timeout': '500m' })],
    ['gRPC-Web', () => clientWith({ 'grpc-timeout': '500m' }, createGrpcWebTransport({ baseUrl, httpVersion: '1.1' }))],
    [
      'Connect',
      () => clientWith({ 'connect-timeout-ms': '500' }, createConnectTransport({ baseUrl, httpVersion: '1.1' })),
    ],
  ])('over %s answers DEADLINE_EXCEEDED though the handler has not finished', async (_protocol, client) => {
    const err = await notHanging(rpcError(client()(`stuck:${randomUUID()}`)), 10_000, 'the call');
    expect(err.code).toBe(Code.DeadlineExceeded);
  });

  test('cancels its statement on the server and rolls its transaction back', async () => {
    const marker = `m${randomUUID().replaceAll('-', '')}`;
    const err = await notHanging(
      rpcError(clientWith({ 'grpc-timeout': '500m' })(`sleep:${marker}`)),
      10_000,
      'the call',
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
    // The statement would sleep 30 s and the database timeout is 2 minutes: only a cancellation ends it sooner.
    await waitFor(
      () =>
        count('select count(*) as n from pg_stat_activity where query like $1 and pid <> pg_backend_pid()', [
          `%${marker}%`,
        ]),
      (running) => running === 0,
    );
    expect(await notes(marker)).toBe(0);
  });

  test('refuses the statements its handler sends after it passed', async () => {
    const marker = randomUUID();
    const err = await rpcError(clientWith({ 'grpc-timeout': '200m' })(`late:${marker}`));
    expect(err.code).toBe(Code.DeadlineExceeded);
    const { write } = await waitFor(
      () => ({ write: outcomes.get(marker) }),
      (sent) => sent.write !== undefined,
    );
    const refusal = await write?.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(refusal).toMatchObject({ code: Code.DeadlineExceeded });
    expect(await notes(marker)).toBe(0);
  });

  test('leaves the work it runs outside its deadline to commit', async () => {
    const marker = randomUUID();
    const err = await rpcError(clientWith({ 'grpc-timeout': '200m' })(`detached:${marker}`));
    expect(err.code).toBe(Code.DeadlineExceeded);
    const { shared } = await waitFor(
      () => ({ shared: outcomes.get(marker) }),
      (started) => started.shared !== undefined,
    );
    await shared;
    expect(await notes(marker)).toBe(1);
  });
});

test('a call whose deadline leaves it time answers as usual', async () => {
  const reply = await clientWith({ 'grpc-timeout': '10S' })('read:none');
  expect(reply.feature?.name).toBe('done');
});

test('a server stream ends with DEADLINE_EXCEEDED when the deadline passes', async () => {
  const health = createClient(Health, createGrpcTransport({ baseUrl }));
  const seen: HealthCheckResponse_ServingStatus[] = [];
  const watching = (async () => {
    for await (const update of health.watch({ service: '' }, { headers: { 'grpc-timeout': '500m' } })) {
      seen.push(update.status);
    }
  })();
  const err = await notHanging(rpcError(watching), 10_000, 'the stream');
  expect(err.code).toBe(Code.DeadlineExceeded);
  expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
});
