// A publisher pass meeting a backlog: more rollup log rows than one fold statement takes, more (customer,
// period)s than a pass publishes, and a recompute waiting. A pass stops after the statement that takes it past its
// size, and takes recomputes only once it has folded every log row it sees (a recompute reads the log, so a row
// folded by a later pass would be counted twice): with recomputes waiting, it goes on to do so.
import { type Database, queryBound } from '@billing/kit/db';
import { IngestStatus, UsageEventSchema } from '@billing/proto/billing/usage/v1/resources_pb';
import { buildMinutesMeter } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { requestRecompute } from '../src/adapter/pending-delta-repository.ts';
import { fromProtoUsageEvent } from '../src/rpc/convert.ts';
import { ingestEvents } from '../src/service/ingest-events.ts';
import { publishDeltas } from '../src/service/publish-deltas.ts';
import { migratedUsageDatabase, saveTestMeter } from './usage-database.ts';

let db: Database;
let drop: () => Promise<void>;

beforeAll(async () => {
  ({ db, drop } = await migratedUsageDatabase('usage_backlog'));
});

afterAll(() => drop());

test('a pass over a backlog is bounded; with recomputes waiting it first folds all the log it sees: each event counts once', async () => {
  const now = new Date('2026-03-10T12:00:00Z');
  await saveTestMeter(db, buildMinutesMeter, now);
  // 64 transactions of 160 customers each (one event of 2 minutes per customer): 64 log rows, twice what one
  // fold statement takes, and 10,240 (customer, period) increments, twice what a pass publishes. Customer
  // "watched" adds 5 minutes in transaction 40, which the first pass does not fold.
  for (let tx = 0; tx < 64; tx++) {
    const events = Array.from({ length: 160 }, (_, c) =>
      create(UsageEventSchema, {
        id: `e-${tx}-${c}`,
        customerExternalId: `c-${tx}-${c}`,
        type: 'build.finished',
        eventTime: timestampFromDate(new Date('2026-03-10T11:00:00Z')),
        properties: { minutes: 2 },
      }),
    );
    if (tx === 40) {
      events.push(
        create(UsageEventSchema, {
          id: 'w-1',
          customerExternalId: 'watched',
          type: 'build.finished',
          eventTime: timestampFromDate(new Date('2026-03-10T11:30:00Z')),
          properties: { minutes: 5 },
        }),
      );
    }
    const [results] = await db.transaction((em) =>
      ingestEvents(em, [{ events: events.map(fromProtoUsageEvent), offset: 0 }], now),
    );
    expect(results?.every((r) => r.status === IngestStatus.ACCEPTED)).toBe(true);
  }
  // With nothing else waiting, the first pass stops after one fold statement: 32 log rows of 160 customers.
  expect(await publishDeltas(db, now)).toBe(5_120);
  // Then the period of "watched" (transaction 40, not folded yet) is to be recomputed, as after a correction or a
  // newly learned period: the next pass folds all the log it sees before it, and publishes "watched" once.
  const march = { start: new Date('2026-03-01T00:00:00Z'), end: new Date('2026-04-01T00:00:00Z') };
  await db.transaction((em) =>
    requestRecompute(
      em,
      'watched',
      [
        {
          meterKey: buildMinutesMeter.key,
          aggregation: buildMinutesMeter.aggregation,
          period: { ...march, subscriptionId: '', closed: false },
        },
      ],
      now,
    ),
  );
  expect(await publishDeltas(db, now)).toBe(5_121);
  const waiting = await db.transaction((em) =>
    queryBound<{ n: string }>(em, 'select count(*) as n from usage_pending_delta', []),
  );
  expect(waiting).toEqual([{ n: '0' }]);
  while ((await publishDeltas(db, now)) > 0);
  const published = await db.transaction((em) =>
    queryBound<{ customer_external_id: string; value: string; event_count: string }>(
      em,
      `select customer_external_id, value::text as value, event_count from usage_published_value
        where customer_external_id in ('watched', 'c-0-0', 'c-63-159') order by customer_external_id`,
      [],
    ),
  );
  expect(published).toEqual([
    { customer_external_id: 'c-0-0', value: '2', event_count: '1' },
    { customer_external_id: 'c-63-159', value: '2', event_count: '1' },
    { customer_external_id: 'watched', value: '5', event_count: '1' },
  ]);
  const totals = await db.transaction((em) =>
    queryBound<{ customers: string; minutes: string; log: string }>(
      em,
      `select count(*) as customers, sum(value)::text as minutes,
              (select count(*) from usage_rollup_log) as log from usage_published_value`,
      [],
    ),
  );
  // 10,240 customers of 2 minutes and "watched" with 5; nothing left in the log.
  expect(totals).toEqual([{ customers: '10241', minutes: '20485', log: '0' }]);
});
