// What a publisher pass announces per billing period, driven pass by pass (no background publisher): usage added
// while a period was open and usage that came after it closed, folded in one pass, go to meter.delta and to late
// usage respectively; a calendar month and a subscription period starting at the same instant keep apart; and
// the periods consumer changes a customer's periods wholly before or after each of its batches.
import { type Database, queryBound } from '@billing/kit/db';
import { MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import { SubscriptionActivatedSchema } from '@billing/proto/billing/subscription/events/v1/events_pb';
import { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { type UsageDelta, UsageEventSchema } from '@billing/proto/billing/usage/v1/resources_pb';
import { subscriptionActivated } from '@billing/proto/events/subscription';
import { meterLateUsageRecorded, meterUsageDelta } from '@billing/proto/events/usage';
import { buildMinutesMeter, recordedEvents, waitFor } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { savePeriod } from '../src/adapter/billing-period-repository.ts';
import { lockCustomersShared } from '../src/adapter/locks.ts';
import { requestRecompute } from '../src/adapter/pending-delta-repository.ts';
import { subscriptionPeriodsConsumer } from '../src/consumers/subscription-periods.ts';
import { fromProtoUsageEvent } from '../src/rpc/convert.ts';
import { ingestEvents } from '../src/service/ingest-events.ts';
import { publishDeltas } from '../src/service/publish-deltas.ts';
import { voidEvent } from '../src/service/void-event.ts';
import { migratedUsageDatabase, saveTestMeter } from './usage-database.ts';

let db: Database;
let drop: () => Promise<void>;
const now = new Date('2026-03-10T12:00:00Z');

beforeAll(async () => {
  ({ db, drop } = await migratedUsageDatabase('usage_publish_periods'));
  await saveTestMeter(db, buildMinutesMeter, now);
});

afterAll(() => drop());

/** Ingests an event: build minutes (a number), a seat used ({ user }) or storage sampled ({ gb }). */
async function ingest(customer: string, id: string, time: string, minutes: number | { user: string } | { gb: number }) {
  const type = typeof minutes === 'number' ? 'build.finished' : 'user' in minutes ? 'seat.used' : 'storage.sampled';
  const event = create(UsageEventSchema, {
    id,
    customerExternalId: customer,
    type,
    eventTime: timestampFromDate(new Date(time)),
    properties: typeof minutes === 'number' ? { minutes } : minutes,
  });
  const [results] = await db.transaction((em) =>
    ingestEvents(em, [{ events: [fromProtoUsageEvent(event)], offset: 0 }], now),
  );
  return results?.[0];
}

/** The deltas of a customer's messages among `events`: [subscription, delta, value, closed]. */
const deltasOf = (customer: string, events: { payload: { customerExternalId: string; deltas: UsageDelta[] } }[]) =>
  events
    .filter((e) => e.payload.customerExternalId === customer)
    .flatMap((e) => e.payload.deltas.map((d) => [d.subscriptionId, d.delta, d.value, d.periodClosed]));
const onTime = async (customer: string) => deltasOf(customer, await recordedEvents(db, meterUsageDelta));
const late = async (customer: string) => deltasOf(customer, await recordedEvents(db, meterLateUsageRecorded));

test('usage added while a period was open and late usage folded in one pass are announced apart', async () => {
  const period = {
    subscriptionId: 'sub-late',
    customer: 'acme',
    start: new Date('2026-02-10T00:00:00Z'),
    end: new Date('2026-03-10T00:00:00Z'),
  };
  await db.transaction((em) => savePeriod(em, { ...period, closed: false }));
  expect(await ingest('acme', 'on-time', '2026-03-09T23:59:00Z', 50)).toMatchObject({ late: false });
  await db.transaction((em) => savePeriod(em, { ...period, closed: true }));
  expect(await ingest('acme', 'late', '2026-03-09T23:59:30Z', 1)).toMatchObject({ late: true });
  await publishDeltas(db, now);
  expect(await onTime('acme')).toEqual([['sub-late', '50', '50', false]]);
  expect(await late('acme')).toEqual([['sub-late', '1', '51', true]]);
  const [message] = await recordedEvents(db, meterLateUsageRecorded);
  expect(message?.payload.eventIds).toEqual(['late']);
});

test("a unique count's change folded with late usage goes out whole as late usage, with the late ids", async () => {
  await saveTestMeter(
    db,
    { key: 'users', eventType: 'seat.used', aggregation: MeterAggregation.UNIQUE_COUNT, valueProperty: 'user' },
    now,
  );
  const period = {
    subscriptionId: 'sub-users',
    customer: 'seats',
    start: new Date('2026-02-10T00:00:00Z'),
    end: new Date('2026-03-10T00:00:00Z'),
  };
  await db.transaction((em) => savePeriod(em, { ...period, closed: false }));
  expect(await ingest('seats', 'on-time-u', '2026-03-09T23:59:00Z', { user: 'ana' })).toMatchObject({ late: false });
  await db.transaction((em) => savePeriod(em, { ...period, closed: true }));
  expect(await ingest('seats', 'late-u', '2026-03-09T23:59:30Z', { user: 'bo' })).toMatchObject({ late: true });
  await publishDeltas(db, now);
  // A recompute reads the whole period, late events included: its change cannot be split.
  expect(await onTime('seats')).toEqual([]);
  expect(await late('seats')).toEqual([['sub-users', '2', '2', true]]);
  const messages = await recordedEvents(db, meterLateUsageRecorded);
  expect(messages.find((m) => m.payload.customerExternalId === 'seats')?.payload.eventIds).toEqual(['late-u']);
});

test('late usage of a closed period is still announced when a correction of the period comes in the same pass', async () => {
  // A unique count (meter "users", created above): ana on time and published, then the period closes, bo comes
  // late, and ana is voided before the next pass.
  const period = {
    subscriptionId: 'sub-users-2',
    customer: 'seats-2',
    start: new Date('2026-02-10T00:00:00Z'),
    end: new Date('2026-03-10T00:00:00Z'),
  };
  await db.transaction((em) => savePeriod(em, { ...period, closed: false }));
  await ingest('seats-2', 'ana-2', '2026-03-09T23:00:00Z', { user: 'ana' });
  await publishDeltas(db, now);
  expect(await onTime('seats-2')).toEqual([['sub-users-2', '1', '1', false]]);
  await db.transaction((em) => savePeriod(em, { ...period, closed: true }));
  expect(await ingest('seats-2', 'bo-2', '2026-03-09T23:30:00Z', { user: 'bo' })).toMatchObject({ late: true });
  const voided = await db.transaction((em) =>
    voidEvent(
      { em, now, requestId: 'void-ana-2' },
      { customer: 'seats-2', eventId: 'ana-2', reason: 'duplicate seat' },
    ),
  );
  // The correction announces its change from the value with bo (2) to the value without ana (1).
  expect(voided.deltas.map((d) => [d.delta, d.value, d.periodClosed])).toEqual([['-1', '1', true]]);
  await publishDeltas(db, now);
  // Billed: 1 at the close, -1 by the correction, +1 late for bo: 1, bo alone.
  expect(await late('seats-2')).toEqual([['sub-users-2', '1', '1', true]]);
});

test('a max meter corrected in a closed period while late usage waits, and late again after, is billed its true maximum', async () => {
  await saveTestMeter(
    db,
    { key: 'peak', eventType: 'storage.sampled', aggregation: MeterAggregation.MAX, valueProperty: 'gb' },
    now,
  );
  const period = {
    subscriptionId: 'sub-peak',
    customer: 'peak-co',
    start: new Date('2026-02-10T00:00:00Z'),
    end: new Date('2026-03-10T00:00:00Z'),
  };
  await db.transaction((em) => savePeriod(em, { ...period, closed: false }));
  await ingest('peak-co', 'p-10', '2026-03-09T22:00:00Z', { gb: 10 });
  await publishDeltas(db, now);
  await db.transaction((em) => savePeriod(em, { ...period, closed: true }));
  await ingest('peak-co', 'p-20', '2026-03-09T23:00:00Z', { gb: 20 });
  const voided = await db.transaction((em) =>
    voidEvent({ em, now, requestId: 'void-p-20' }, { customer: 'peak-co', eventId: 'p-20', reason: 'sensor glitch' }),
  );
  await publishDeltas(db, now);
  // Then 15 comes late: the true maximum is 15.
  await ingest('peak-co', 'p-15', '2026-03-09T23:30:00Z', { gb: 15 });
  await publishDeltas(db, now);
  const billed = [
    ...(await onTime('peak-co')),
    ...voided.deltas.map((d) => [d.subscriptionId, d.delta, d.value, d.periodClosed]),
    ...(await late('peak-co')),
  ];
  // 10 on time; the void's change from 20 (with the late 20) to 10; the late usage beyond what the void said: the
  // period's value 10 against the 0 billed so far, then 15 against 10. 15 in all.
  expect(billed).toEqual([
    ['sub-peak', '10', '10', false],
    ['sub-peak', '-10', '10', true],
    ['sub-peak', '10', '10', true],
    ['sub-peak', '5', '15', true],
  ]);
});

test('a calendar month and a subscription period starting at the same instant keep their own published values', async () => {
  // Usage before the subscription is known falls in the calendar month [Mar 1, Apr 1).
  await ingest('calendar', 'before', '2026-03-05T10:00:00Z', 7);
  // Then a subscription anchored on the 1st is learned, and its period recomputed (as usage-periods asks), before
  // the next pass: one message carries both periods.
  const period = {
    subscriptionId: 'sub-cal',
    customer: 'calendar',
    start: new Date('2026-03-01T00:00:00Z'),
    end: new Date('2026-04-01T00:00:00Z'),
    closed: false,
  };
  await db.transaction(async (em) => {
    await savePeriod(em, period);
    await requestRecompute(
      em,
      'calendar',
      [{ meterKey: buildMinutesMeter.key, aggregation: buildMinutesMeter.aggregation, period }],
      now,
    );
  });
  await publishDeltas(db, now);
  expect(await onTime('calendar')).toEqual([
    ['', '7', '7', false],
    ['sub-cal', '7', '7', false],
  ]);
  await ingest('calendar', 'after', '2026-03-06T10:00:00Z', 3);
  await publishDeltas(db, now);
  expect((await onTime('calendar')).slice(2)).toEqual([['sub-cal', '3', '10', false]]);
});

test('the periods consumer waits for the batches of the customer in progress, so none misses the new period', async () => {
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  // A batch of customer "racer" that has read its periods (holding its customer's lock) and not committed yet.
  let locked = false;
  const batch = db.transaction(async (em) => {
    await lockCustomersShared(em, ['racer']);
    locked = true;
    await held;
  });
  await waitFor(async () => locked, Boolean);
  const activated = subscriptionPeriodsConsumer.handlers.find((h) => h.event.type === subscriptionActivated.type);
  if (!activated) throw new Error('usage-periods handles subscription.activated');
  const payload = create(SubscriptionActivatedSchema, {
    subscription: {
      id: 'sub-racer',
      customerExternalId: 'racer',
      state: SubscriptionState.ACTIVE,
      currentPeriod: {
        startTime: timestampFromDate(new Date('2026-03-01T00:00:00Z')),
        endTime: timestampFromDate(new Date('2026-04-01T00:00:00Z')),
      },
    },
  });
  let saved = false;
  const consumer = db
    .transaction((em) =>
      activated.handle(em, {
        payload,
        envelope: {
          eventId: 'e-racer',
          eventType: subscriptionActivated.type,
          schema: SubscriptionActivatedSchema.typeName,
          aggregateId: 'sub-racer',
          aggregateSeq: 2,
          occurredTime: now,
          producer: 'subscription',
        },
      }),
    )
    .then(() => {
      saved = true;
    });
  try {
    await waitFor(
      () =>
        queryBound<{ n: string }>(
          db.fork(),
          "select count(*) as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())",
          [],
        ),
      (rows) => rows[0]?.n === '1',
    );
    expect(saved).toBe(false);
  } finally {
    release();
  }
  await Promise.all([batch, consumer]);
  expect(saved).toBe(true);
});

test("a correction recomputes only what its period owns: the subscription period's usage is not the month's", async () => {
  // The subscription starts on Mar 10: usage before it falls in the calendar month, usage after it in its period.
  await db.transaction((em) =>
    savePeriod(em, {
      subscriptionId: 'sub-over',
      customer: 'overlap',
      start: new Date('2026-03-10T00:00:00Z'),
      end: new Date('2026-04-10T00:00:00Z'),
      closed: false,
    }),
  );
  await ingest('overlap', 'trial-1', '2026-03-05T00:00:00Z', 5);
  await ingest('overlap', 'trial-2', '2026-03-06T00:00:00Z', 1);
  expect(await ingest('overlap', 'paid-1', '2026-03-10T06:00:00Z', 100)).toMatchObject({ late: false });
  await publishDeltas(db, now);
  const corrected = await db.transaction((em) =>
    voidEvent(
      { em, now, requestId: 'void-trial-2' },
      { customer: 'overlap', eventId: 'trial-2', reason: 'test usage' },
    ),
  );
  expect(corrected.deltas.map((d) => [d.subscriptionId, d.delta, d.value])).toEqual([['', '-1', '5']]);
  await publishDeltas(db, now);
  expect(await onTime('overlap')).toEqual([
    ['', '6', '6', false],
    ['sub-over', '100', '100', false],
    ['', '-1', '5', false],
  ]);
});
