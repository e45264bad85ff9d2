// A plan published through the API reaches a consumer exactly once, over real NATS JetStream, also when
// NATS is down while the plan is published and comes back later.

import type { EventBus } from '@billing/kit/bus';
import { on, startConsumer } from '@billing/kit/consumer';
import { type Database, openDatabase, queryBound } from '@billing/kit/db';
import { connectNatsBus } from '@billing/kit/nats-bus';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { planPublished } from '@billing/proto/events/catalog';
import {
  buildMinutes,
  buildMinutesMeter,
  createTestDatabase,
  type PrivateNats,
  privateNats,
  privateRepos,
  startTestService,
  type TestDatabase,
  type TestService,
  teamSpec,
  testLogger,
  waitFor,
} from '@billing/test/harness';
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { catalogService } from '../src/definition.ts';

let nats: PrivateNats;
let bus: EventBus;
let consumerBus: EventBus;
let service: TestService;
let client: Client<typeof CatalogService>;
let consumerDatabase: TestDatabase;
let consumerDb: Database;
const received: { eventId: string; planKey: string; version: number; seq: number; occurred: Date }[] = [];
/** Publishes of the catalog's relay that failed (NATS down). */
let failedPublishes = 0;

/** The plan.published events the catalog recorded for a plan, by event id and sequence, from its outbox. */
async function recordedPublications(planKey: string) {
  const rows = await queryBound<{ id: string; aggregate_seq: string }>(
    service.context.db.fork(),
    'select id, aggregate_seq from outbox_event where type = $1 and aggregate_id = $2 order by aggregate_seq',
    [planPublished.type, `plan:${planKey}`],
  );
  return rows.map((r) => ({ eventId: r.id, seq: Number(r.aggregate_seq) }));
}

/** The event ids the test consumer applied (and so will skip if they come again). */
async function appliedEventIds(): Promise<string[]> {
  const rows = await queryBound<{ event_id: string }>(
    consumerDb.fork(),
    'select event_id from processed_event where consumer = $1 order by event_id',
    ['test-plans'],
  );
  return rows.map((r) => r.event_id);
}

/**
 * Waits until the consumer has applied every plan.published event the catalog recorded for `planKey`, and returns
 * what its handler received for that plan: once the outbox's events are all applied, the consumer skips any
 * redelivery of them by id, so what was received then is all it will ever receive.
 */
async function receivedOnceApplied(planKey: string) {
  const recorded = await recordedPublications(planKey);
  await waitFor(appliedEventIds, (applied) => recorded.every((r) => applied.includes(r.eventId)), 30_000);
  return { recorded, received: received.filter((r) => r.planKey === planKey) };
}

beforeAll(async () => {
  nats = await privateNats();
  await nats.start();
  bus = await connectNatsBus({ servers: [nats.url], name: 'catalog', logger: testLogger, publishTimeoutMs: 1_000 });
  const natsBus = bus;
  // The catalog's bus, counting the publishes that fail, so the test sees the relay try while NATS is down.
  const countingBus: EventBus = {
    survivesRestart: natsBus.survivesRestart,
    ensureStream: (name) => natsBus.ensureStream(name),
    publish: (message) =>
      natsBus.publish(message).catch((err: unknown) => {
        failedPublishes++;
        throw err;
      }),
    consume: (options) => natsBus.consume(options),
    close: () => natsBus.close(),
  };
  consumerBus = await connectNatsBus({ servers: [nats.url], name: 'test-consumer', logger: testLogger });
  service = await startTestService(catalogService, { bus: countingBus });
  client = createClient(CatalogService, createGrpcTransport({ baseUrl: service.baseUrl }));
  consumerDatabase = await createTestDatabase('consumer');
  consumerDb = await openDatabase({
    service: 'test',
    url: consumerDatabase.url,
    entities: [],
    migrations: [],
    logger: testLogger,
  });
  await consumerDb.migrate();
  await startConsumer({
    name: 'test-plans',
    stream: 'catalog',
    db: consumerDb,
    bus: consumerBus,
    logger: testLogger,
    handlers: [
      on(planPublished, async (_em, event) => {
        received.push({
          eventId: event.envelope.eventId,
          planKey: event.payload.plan?.key ?? '',
          version: event.payload.version?.version ?? 0,
          seq: event.envelope.aggregateSeq,
          occurred: event.envelope.occurredTime,
        });
      }),
    ],
  });
  await client.createMeter({ requestId: 'm1', meter: buildMinutesMeter });
  await client.createFeature({ requestId: 'f1', feature: privateRepos });
  await client.createFeature({ requestId: 'f2', feature: buildMinutes });
});

afterAll(async () => {
  await service.destroy();
  await consumerBus.close();
  await bus.close();
  await consumerDb.close();
  await consumerDatabase.drop();
  await nats.destroy();
});

describe('plan events', () => {
  test('a published plan is consumed exactly once, with its version and the producer time', async () => {
    await client.createPlan({ requestId: 'p1', key: 'team', spec: teamSpec() });
    const before = new Date();
    await client.publishPlan({ requestId: 'p2', planKey: 'team' });
    const { recorded, received: team } = await receivedOnceApplied('team');
    expect(recorded.map((r) => r.seq)).toEqual([1]);
    expect(team.map((r) => r.eventId)).toEqual(recorded.map((r) => r.eventId));
    expect(team[0]).toMatchObject({ version: 1, seq: 1 });
    expect(team[0]?.occurred.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1_000);
  });

  test('with NATS down the publish still succeeds, and its event is not delivered meanwhile', async () => {
    await nats.stop();
    const failedBefore = failedPublishes;
    await client.createPlan({ requestId: 'p3', key: 'business', spec: teamSpec({ name: 'Business' }) });
    const published = await client.publishPlan({ requestId: 'p4', planKey: 'business' });
    expect(published.version?.version).toBe(1);
    // The relay tries at once (the publish woke it) and fails against the stopped server.
    await waitFor(
      async () => failedPublishes,
      (failed) => failed > failedBefore,
    );
    const [event] = await recordedPublications('business');
    const [row] = await queryBound<{ published: boolean }>(
      service.context.db.fork(),
      'select published_at is not null as published from outbox_event where id = $1',
      [event?.eventId],
    );
    expect(row?.published).toBe(false);
    expect(received.some((r) => r.planKey === 'business')).toBe(false);
  });

  test('once NATS is back the event held in the outbox arrives, once', async () => {
    await nats.start();
    const { recorded, received: business } = await receivedOnceApplied('business');
    expect(business.map((r) => r.eventId)).toEqual(recorded.map((r) => r.eventId));
    // The relay stamps a row once NATS acknowledged it, which may come after the consumer had it.
    const pending = async () => {
      const [row] = await queryBound<{ n: string }>(
        service.context.db.fork(),
        'select count(*) as n from outbox_event where published_at is null',
        [],
      );
      return Number(row?.n);
    };
    expect(await waitFor(pending, (n) => n === 0)).toBe(0);
  });
});
