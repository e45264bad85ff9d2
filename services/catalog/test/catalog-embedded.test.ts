// The all-in-one mode: the catalog on embedded PGlite and the in-process bus keeps the bus guarantees
// across a restart of the process: an event published but not yet consumed is delivered after the restart,
// and an event already consumed is not applied twice.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@billing/kit/clock';
import { on, startConsumer } from '@billing/kit/consumer';
import { openDatabase, queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { runService } from '@billing/kit/runtime';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { planPublished } from '@billing/proto/events/catalog';
import { buildMinutes, buildMinutesMeter, privateRepos, teamSpec, testLogger, waitFor } from '@billing/test/harness';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, expect, test } from '@jest/globals';
import { catalogService } from '../src/definition.ts';

const dir = mkdtempSync(join(tmpdir(), 'catalog-embedded-'));
const pendingEvents = 'select count(*) as n from outbox_event where published_at is null';

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the catalog and a consumer of its plan events, both on PGlite, on a fresh in-process bus. */
async function startProcess(received: string[]) {
  const bus = createMemoryBus();
  const catalog = await runService(catalogService, {
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir, 'catalog'),
    bus,
    logger: testLogger,
    clock: systemClock,
  });
  const consumerDb = await openDatabase({
    service: 'watcher',
    dataDir: join(dir, 'watcher'),
    entities: [],
    migrations: [],
    logger: testLogger,
  });
  await consumerDb.migrate();
  const subscription = await startConsumer({
    name: 'watcher-plans',
    stream: 'catalog',
    db: consumerDb,
    bus,
    logger: testLogger,
    handlers: [
      on(planPublished, async (_em, e) => void received.push(`${e.payload.plan?.key}@${e.payload.version?.version}`)),
    ],
  });
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${catalog.port}` }));
  return {
    client,
    catalog,
    subscription,
    async stop() {
      await subscription.stop().catch(() => undefined);
      await catalog.stop();
      await bus.close();
      await consumerDb.close();
    },
  };
}

test('events survive a restart of the all-in-one process, each applied once', async () => {
  const received: string[] = [];
  const first = await startProcess(received);
  expect(first.catalog.context.db.embedded).toBe(true);
  await first.client.createMeter({ requestId: 'm', meter: buildMinutesMeter });
  await first.client.createFeature({ requestId: 'f1', feature: privateRepos });
  await first.client.createFeature({ requestId: 'f2', feature: buildMinutes });
  await first.client.createPlan({ requestId: 'p1', key: 'team', spec: teamSpec() });
  await first.client.publishPlan({ requestId: 'p2', planKey: 'team' });
  await waitFor(
    async () => received,
    (r) => r.includes('team@1'),
  );

  // The consumer stops (as if the process died before it got there); the next plan is published.
  await first.subscription.stop();
  await first.client.createPlan({ requestId: 'p3', key: 'business', spec: teamSpec({ name: 'Business' }) });
  await first.client.publishPlan({ requestId: 'p4', planKey: 'business' });
  const db = first.catalog.context.db;
  await waitFor(
    async () => (await queryBound<{ n: string }>(db.fork(), pendingEvents, []))[0]?.n,
    (n) => Number(n) === 0,
  );
  await first.stop();
  expect(received).toEqual(['team@1']);

  // At start the relay publishes the whole outbox again, in order: team's event, which the consumer skips as
  // applied, then business's. Once business's arrives, team's replay is behind it.
  const second = await startProcess(received);
  await waitFor(
    async () => received,
    (r) => r.includes('business@1'),
  );
  await second.stop();
  expect(received).toEqual(['team@1', 'business@1']);
});
