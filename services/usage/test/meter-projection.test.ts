// The usage service's copy of the catalog's meters (consumer `usage-meters`): each catalog event is applied in
// its meter's order, and an older one replayed late (a parked message) does not undo a newer one.

import { type Database, queryBound } from '@billing/kit/db';
import { MeterAggregation, MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { meterArchived, meterCreated } from '@billing/proto/events/catalog';
import type { EventType } from '@billing/proto/events/define';
import { waitFor } from '@billing/test/harness';
import { create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { findMeters, saveMeter } from '../src/adapter/meter-repository.ts';
import { catalogMetersConsumer } from '../src/consumers/catalog-meters.ts';
import { migratedUsageDatabase } from './usage-database.ts';

let db: Database;
let drop: () => Promise<void>;

beforeAll(async () => {
  ({ db, drop } = await migratedUsageDatabase('usage_meter_projection'));
});

afterAll(() => drop());

/** Applies the catalog event `event`, number `seq` of meter `key`, through the consumer's handler. */
async function apply<S extends DescMessage>(event: EventType<S>, payload: MessageShape<S>, seq: number) {
  const handler = catalogMetersConsumer.handlers.find((h) => h.event.type === event.type);
  if (!handler) throw new Error(`usage-meters handles ${event.type}`);
  await db.transaction((em) =>
    handler.handle(em, {
      payload,
      envelope: {
        eventId: `meter-e-${seq}`,
        eventType: event.type,
        schema: event.schema.typeName,
        aggregateId: 'gb',
        aggregateSeq: seq,
        occurredTime: new Date('2026-03-10T12:00:00Z'),
        producer: 'catalog',
      },
    }),
  );
}

test('a meter archived stays archived when its creation is applied after', async () => {
  const meter = create(MeterSchema, {
    key: 'gb',
    name: 'GB',
    eventType: 'storage.sampled',
    aggregation: MeterAggregation.MAX,
    valueProperty: 'gb',
  });
  await apply(meterArchived, create(meterArchived.schema, { meter }), 2);
  await apply(meterCreated, create(meterCreated.schema, { meter }), 1);
  const saved = await db.transaction((em) => findMeters(em, ['gb']));
  expect(saved.get('gb')?.archived).toBe(true);
});

test('two writers saving the same new meter at once both succeed, and the newer event wins', async () => {
  const meter = create(MeterSchema, {
    key: 'seats_seen',
    name: 'Seats seen',
    eventType: 'seat.seen',
    aggregation: MeterAggregation.UNIQUE_COUNT,
    valueProperty: 'user',
  });
  // The first writer keeps its transaction open after saving, so the second's insert meets its uncommitted row.
  let release = () => {};
  const gate = new Promise<void>((open) => {
    release = open;
  });
  let announceSaved = () => {};
  const firstSaved = new Promise<void>((saved) => {
    announceSaved = saved;
  });
  const first = db.transaction(async (em) => {
    await saveMeter(em, { ...meter, archived: true }, new Date('2026-03-10T12:00:00Z'), 2);
    announceSaved();
    await gate;
  });
  await firstSaved;
  const second = db.transaction((em) => saveMeter(em, meter, new Date('2026-03-10T12:00:01Z'), 1));
  await waitFor(
    () =>
      queryBound<{ waiting: number }>(
        db.fork(),
        `select count(*)::int as waiting from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'`,
        [],
      ),
    (rows) => (rows[0]?.waiting ?? 0) > 0,
  );
  release();
  await expect(Promise.all([first, second])).resolves.toHaveLength(2);
  const saved = await db.transaction((em) => findMeters(em, ['seats_seen']));
  expect(saved.get('seats_seen')?.archived).toBe(true);
});
