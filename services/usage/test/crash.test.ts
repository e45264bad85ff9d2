// Acknowledged means durable: the usage service is SIGKILLed while a producer sends events (with retries and
// deliberate duplicates); after a restart and the producer's retries, the stored count and the aggregate are
// exactly right.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { catalogService } from '@billing/catalog';
import type { EventBus } from '@billing/kit/bus';
import { connectNatsBus } from '@billing/kit/nats-bus';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import {
  buildMinutesMeter,
  createTestDatabase,
  deleteTestStreams,
  sparePort,
  startTestService,
  TEST_NATS_URL,
  type TestDatabase,
  type TestService,
  testLogger,
  testSubjectPrefix,
  waitFor,
} from '@billing/test/harness';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import pg from 'pg';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const prefix = testSubjectPrefix('crash');
let bus: EventBus;
let catalog: TestService;
let database: TestDatabase;
let port: number;

function startUsage(): ChildProcess {
  return spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      USAGE_PORT: String(port),
      USAGE_DATABASE_URL: database.url,
      NATS_URL: TEST_NATS_URL,
      NATS_SUBJECT_PREFIX: prefix,
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

beforeAll(async () => {
  bus = await connectNatsBus({
    servers: [TEST_NATS_URL],
    subjectPrefix: prefix,
    name: 'crash-catalog',
    logger: testLogger,
  });
  catalog = await startTestService(catalogService, { bus });
  const catalogClient = createClient(CatalogService, createGrpcTransport({ baseUrl: catalog.baseUrl }));
  await catalogClient.createMeter({ requestId: 'm', meter: buildMinutesMeter });
  database = await createTestDatabase('usage_crash');
  port = await sparePort();
});

afterAll(async () => {
  await catalog.destroy();
  await bus.close();
  await deleteTestStreams(prefix);
  await database.drop();
});

test('SIGKILL under load loses no acknowledged event and counts none twice', async () => {
  let child = startUsage();
  const client = createClient(UsageService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  const period = {
    startTime: timestampFromDate(new Date(Date.now() - 48 * 3_600_000)),
    endTime: timestampFromDate(new Date(Date.now() + 3_600_000)),
  };
  // Ready once the meter arrived from the catalog's stream.
  await waitFor(
    () =>
      client.getPeriodUsage({ customerExternalId: 'c', meterKey: 'build_minutes', period }).then(Boolean, () => false),
    Boolean,
    30_000,
  );

  const TOTAL = 4_000;
  const BATCH = 100;
  const time = timestampFromDate(new Date(Date.now() - 3_600_000));
  const eventOf = (n: number) => ({
    id: `ev-${n}`,
    customerExternalId: 'crash-customer',
    type: 'build.finished',
    eventTime: time,
    properties: { minutes: (n % 7) + 1 },
  });
  let batches = 0;
  let failures = 0;
  // Eight producers at once, each sending its share: more requests than write slots, so they are also written
  // in groups when the service is killed.
  const PRODUCERS = 8;
  const producer = Promise.all(
    Array.from({ length: PRODUCERS }, async (_, p) => {
      const share = TOTAL / PRODUCERS;
      for (let first = p * share; first < (p + 1) * share; first += BATCH) {
        // Every batch also resends the last 10 events of the previous one: deliberate duplicates.
        const ids = Array.from({ length: BATCH }, (_, j) => first + j);
        const events = [...ids, ...ids.slice(0, first > p * share ? 10 : 0).map((n) => n - 10)].map(eventOf);
        // A producer retries a refused batch until the restarted service takes it, pausing between attempts as
        // real ones do.
        await waitFor(
          () =>
            client.ingestEvents({ events }).then(
              () => true,
              () => {
                failures++;
                return false;
              },
            ),
          Boolean,
          30_000,
        );
        batches++;
      }
    }),
  );

  await waitFor(
    async () => batches,
    (sent) => sent >= 12,
  );
  const killed = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await killed;
  child = startUsage();
  await producer;
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));

  // Restarted, the service answers from what it stored before and after the crash.
  child = startUsage();
  const answer = await waitFor(
    () =>
      client
        .getPeriodUsage({ customerExternalId: 'crash-customer', meterKey: 'build_minutes', period })
        .catch(() => undefined),
    (answered) => answered !== undefined,
    30_000,
  );
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));

  const expectedMinutes = Array.from({ length: TOTAL }, (_, n) => (n % 7) + 1).reduce((a, b) => a + b, 0);
  expect(failures).toBeGreaterThan(0);
  expect(answer).toMatchObject({ value: String(expectedMinutes), eventCount: BigInt(TOTAL) });
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  const keys = await db.query<{ n: string }>('select count(*) as n from usage_event_key');
  const events = await db.query<{ n: string }>('select count(*) as n from usage_event');
  await db.end();
  expect([Number(keys.rows[0]?.n), Number(events.rows[0]?.n)]).toEqual([TOTAL, TOTAL]);
});
