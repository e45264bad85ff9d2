// A plan published through the API reaches a consumer exactly once, over real NATS JetStream, also when
// NATS is down while the plan is published and comes back later.

import type { EventBus } from '@billing/kit/bus';
import { on, startConsumer } from '@billing/kit/consumer';
import { type Database, openDatabase } from '@billing/kit/db';
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
const received: { planKey: string; version: number; seq: number; occurred: Date }[] = [];

async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  nats = await privateNats();
  await nats.start();
  bus = await connectNatsBus({ servers: [nats.url], name: 'catalog', logger: testLogger, publishTimeoutMs: 1_000 });
  consumerBus = await connectNatsBus({ servers: [nats.url], name: 'test-consumer', logger: testLogger });
  service = await startTestService(catalogService, { bus });
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
    await eventually(() => received.some((r) => r.planKey === 'team'), 'team published event');
    await new Promise((r) => setTimeout(r, 500));
    const team = received.filter((r) => r.planKey === 'team');
    expect(team).toHaveLength(1);
    expect(team[0]).toMatchObject({ version: 1, seq: 1 });
    expect(team[0]?.occurred.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1_000);
  });

  test('with NATS down the publish still succeeds, and the event arrives once NATS is back', async () => {
    await nats.stop();
    await client.createPlan({ requestId: 'p3', key: 'business', spec: teamSpec({ name: 'Business' }) });
    const published = await client.publishPlan({ requestId: 'p4', planKey: 'business' });
    expect(published.version?.version).toBe(1);
    // Let the relay fail at least once against the stopped server.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(received.some((r) => r.planKey === 'business')).toBe(false);
    await nats.start();
    await eventually(
      () => received.some((r) => r.planKey === 'business'),
      'business published event after NATS restart',
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(received.filter((r) => r.planKey === 'business')).toHaveLength(1);
    const pending = await service.context.db
      .fork()
      .execute<{ n: string }[]>('select count(*) as n from outbox_event where published_at is null');
    expect(Number(pending[0]?.n)).toBe(0);
  });
});
