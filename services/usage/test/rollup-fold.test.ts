// Folding the rollup log into what each billing period gained: a closed period re-announced with another end
// between two batches of late usage yields one increment per announced period, each with its own late events,
// so the period counts each event once.
import type { Database } from '@billing/kit/db';
import { IngestStatus, UsageEventSchema } from '@billing/proto/billing/usage/v1/resources_pb';
import { buildMinutesMeter } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { savePeriod } from '../src/adapter/billing-period-repository.ts';
import { foldRollupLog } from '../src/adapter/rollup-log-repository.ts';
import { fromProtoUsageEvent } from '../src/rpc/convert.ts';
import { ingestEvents } from '../src/service/ingest-events.ts';
import { migratedUsageDatabase, saveTestMeter } from './usage-database.ts';

let db: Database;
let drop: () => Promise<void>;

beforeAll(async () => {
  ({ db, drop } = await migratedUsageDatabase('usage_fold'));
});

afterAll(() => drop());

test('late usage of a closed period whose end changed between batches counts once, with each batch its late ids', async () => {
  const now = new Date('2026-03-10T12:00:00Z');
  const start = new Date('2026-02-01T00:00:00Z');
  await saveTestMeter(db, buildMinutesMeter, now);
  const ingestLate = async (id: string, minutes: number, end: Date) => {
    await db.transaction((em) =>
      savePeriod(em, { subscriptionId: 'sub-1', customer: 'acme', start, end, closed: true }),
    );
    const event = create(UsageEventSchema, {
      id,
      customerExternalId: 'acme',
      type: 'build.finished',
      eventTime: timestampFromDate(new Date('2026-02-15T10:00:00Z')),
      properties: { minutes },
    });
    const [results] = await db.transaction((em) =>
      ingestEvents(em, [{ events: [fromProtoUsageEvent(event)], offset: 0 }], now),
    );
    expect(results?.map((r) => [r.status, r.late])).toEqual([[IngestStatus.ACCEPTED, true]]);
  };
  await ingestLate('late-a', 5, new Date('2026-03-01T00:00:00Z'));
  await ingestLate('late-b', 7, new Date('2026-03-02T00:00:00Z'));

  const { logRows, increments } = await db.transaction((em) => foldRollupLog(em, 32, { after: '0' }));
  expect(logRows).toBe(2);
  expect(
    increments
      .map((i) => ({
        end: i.period.end.toISOString(),
        value: i.increment.value.toFixed(),
        events: i.increment.eventCount,
        late: i.lateEventIds,
      }))
      .sort((a, b) => a.end.localeCompare(b.end)),
  ).toEqual([
    { end: '2026-03-01T00:00:00.000Z', value: '5', events: 1, late: ['late-a'] },
    { end: '2026-03-02T00:00:00.000Z', value: '7', events: 1, late: ['late-b'] },
  ]);
});
