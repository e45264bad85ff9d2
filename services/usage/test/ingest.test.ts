// Ingestion and period usage against real PostgreSQL, with meters coming from a real catalog over the bus.

import { catalogService } from '@billing/catalog';
import { queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { Decimal } from '@billing/money';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { FilterOperator, MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import {
  type MeterUsageDelta,
  MeterUsageDeltaSchema,
  type UsageEventVoided,
  UsageEventVoidedSchema,
} from '@billing/proto/billing/usage/events/v1/events_pb';
import {
  type IngestResult,
  IngestStatus,
  RejectReason,
  UsageEventSchema,
} from '@billing/proto/billing/usage/v1/resources_pb';
import { UsageService, Window } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { meterUsageDelta, usageEventVoided } from '@billing/proto/events/usage';
import {
  buildMinutesMeter,
  reason,
  recordedEvents,
  rpcError,
  startTestService,
  type TestService,
  violations,
  waitFor,
} from '@billing/test/harness';
import { create, fromBinary, type JsonObject } from '@bufbuild/protobuf';
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { usageService } from '../src/definition.ts';
import { meterUsageAggregate, usageEventAggregate } from '../src/domain/aggregates.ts';
import { fromProtoUsageEvent } from '../src/rpc/convert.ts';
import { ingestEvents } from '../src/service/ingest-events.ts';

const bus = createMemoryBus();
let catalog: TestService;
let usage: TestService;
let client: Client<typeof UsageService>;
const now = Date.now();
const HOUR = 3_600_000;
// A fixed past day so that hours and periods are easy to reason about.
const day = new Date(Math.floor((now - 3 * 24 * HOUR) / (24 * HOUR)) * 24 * HOUR);
const at = (hours: number) => new Date(day.getTime() + hours * HOUR);

function event(id: string, customer: string, type: string, time: Date, properties: JsonObject) {
  return { id, customerExternalId: customer, type, eventTime: timestampFromDate(time), properties };
}

async function value(customer: string, meterKey: string, from: Date, to: Date) {
  const res = await client.getPeriodUsage({
    customerExternalId: customer,
    meterKey,
    period: { startTime: timestampFromDate(from), endTime: timestampFromDate(to) },
  });
  return { value: res.value, events: Number(res.eventCount) };
}

beforeAll(async () => {
  catalog = await startTestService(catalogService, { bus });
  usage = await startTestService(usageService, { bus });
  client = createClient(UsageService, createGrpcTransport({ baseUrl: usage.baseUrl }));
  const catalogClient = createClient(CatalogService, createGrpcTransport({ baseUrl: catalog.baseUrl }));
  const meters = [
    { ...buildMinutesMeter, groupBy: ['os'] },
    { key: 'builds', eventType: 'build.finished', aggregation: MeterAggregation.COUNT },
    {
      key: 'linux_minutes',
      eventType: 'build.finished',
      aggregation: MeterAggregation.SUM,
      valueProperty: 'minutes',
      filters: [{ property: 'os', operator: FilterOperator.IN, values: ['linux'] }],
    },
    { key: 'peak_storage', eventType: 'storage.sampled', aggregation: MeterAggregation.MAX, valueProperty: 'gb' },
    { key: 'last_storage', eventType: 'storage.sampled', aggregation: MeterAggregation.LATEST, valueProperty: 'gb' },
    { key: 'active_users', eventType: 'user.seen', aggregation: MeterAggregation.UNIQUE_COUNT, valueProperty: 'user' },
  ];
  for (const meter of meters)
    await catalogClient.createMeter({ requestId: `m-${meter.key}`, meter: { ...meter, name: meter.key } });
  // The meters reach usage through the catalog's events.
  await waitFor(
    () => Promise.all(meters.map((m) => value('nobody', m.key, at(0), at(1)).then(Boolean, () => false))),
    (known) => known.every(Boolean),
  );
});

/**
 * The meter deltas of `customer` delivered to a bus consumer `durable`, as they come, and how to wait until it
 * was delivered every one the service recorded (its outbox) with nothing left for the publisher to fold: then no
 * more will come without new usage.
 */
async function deliveredDeltas(durable: string, customer: string) {
  const seen: MeterUsageDelta[] = [];
  const subscription = await bus.consume({
    stream: 'usage',
    durable,
    subjects: ['billing.usage.meter.delta'],
    handle: async (d) => {
      const delta = fromBinary(MeterUsageDeltaSchema, d.message.payload);
      if (delta.customerExternalId === customer) seen.push(delta);
    },
  });
  const outboxOf = async () => {
    const recorded = await recordedEvents(usage.context.db, meterUsageDelta);
    const [folding] = await queryBound<{ n: string }>(
      usage.context.db.fork(),
      'select (select count(*) from usage_rollup_log) + (select count(*) from usage_pending_delta) as n',
      [],
    );
    return { recorded: recorded.filter((e) => e.payload.customerExternalId === customer).length, folding: folding?.n };
  };
  return {
    seen,
    /** Waits until every delta recorded for the customer was delivered and nothing waits to be folded. */
    async settled() {
      await waitFor(outboxOf, (o) => o.folding === '0' && o.recorded === seen.length);
    },
    stop: () => subscription.stop(),
  };
}

afterAll(async () => {
  await usage.destroy();
  await catalog.destroy();
  await bus.close();
});

describe('a batch', () => {
  test('reports each event: accepted, duplicate, duplicate with other content, rejected with its field', async () => {
    const ok1 = event('e1', 'acme', 'build.finished', at(10), { minutes: 10, os: 'linux' });
    const ok2 = event('e2', 'acme', 'build.finished', at(10.5), { minutes: 20, os: 'linux' });
    const res = await client.ingestEvents({
      events: [
        ok1,
        ok2,
        ok1,
        { ...ok1, properties: { minutes: 99, os: 'linux' } },
        event('', 'acme', 'build.finished', at(10), { minutes: 1 }),
        event('e3', 'acme', 'build.finished', new Date(now + 3_600_000), { minutes: 1 }),
        event('e4', 'acme', 'build.finished', at(10), { os: 'linux' }),
        event('e5', 'acme', 'build.finished', at(10), { minutes: 1, blob: 'x'.repeat(70_000) }),
        event('e6', '', 'build.finished', at(10), { minutes: 1 }),
      ],
    });
    expect(res.results.map((r) => [r.index, r.status, r.rejectReason, r.field])).toEqual([
      [0, IngestStatus.ACCEPTED, RejectReason.UNSPECIFIED, ''],
      [1, IngestStatus.ACCEPTED, RejectReason.UNSPECIFIED, ''],
      [2, IngestStatus.DUPLICATE, RejectReason.UNSPECIFIED, ''],
      [3, IngestStatus.DUPLICATE_MISMATCH, RejectReason.UNSPECIFIED, ''],
      [4, IngestStatus.REJECTED, RejectReason.INVALID_ID, 'events[4].id'],
      [5, IngestStatus.REJECTED, RejectReason.TIME_IN_FUTURE, 'events[5].event_time'],
      [6, IngestStatus.REJECTED, RejectReason.INVALID_VALUE, 'events[6].properties'],
      [7, IngestStatus.REJECTED, RejectReason.PROPERTIES_TOO_LARGE, 'events[7].properties'],
      [8, IngestStatus.REJECTED, RejectReason.INVALID_CUSTOMER, 'events[8].customer_external_id'],
    ]);
    expect([res.acceptedCount, res.duplicateCount, res.duplicateMismatchCount, res.rejectedCount]).toEqual([
      2, 1, 1, 5,
    ]);
    expect(await value('acme', 'build_minutes', at(0), at(24))).toEqual({ value: '30', events: 2 });
    expect(await value('acme', 'builds', at(0), at(24))).toEqual({ value: '2', events: 2 });
  });

  test('retrying a whole batch counts nothing twice, whatever the order of its properties', async () => {
    const batch = [1, 2, 3].map((n) =>
      event(`retry-${n}`, 'retrier', 'build.finished', at(5), { minutes: n, os: 'mac' }),
    );
    batch.push(
      event('retry-4', 'retrier', 'build.finished', at(5), { minutes: 4, meta: { b: 1, a: [{ y: 1, x: 2 }] } }),
    );
    await client.ingestEvents({ events: batch });
    const reordered = [1, 2, 3].map((n) =>
      event(`retry-${n}`, 'retrier', 'build.finished', at(5), { os: 'mac', minutes: n }),
    );
    reordered.push(
      event('retry-4', 'retrier', 'build.finished', at(5), { meta: { a: [{ x: 2, y: 1 }], b: 1 }, minutes: 4 }),
    );
    const again = await client.ingestEvents({ events: reordered });
    expect(again.results.map((r) => r.status)).toEqual([
      IngestStatus.DUPLICATE,
      IngestStatus.DUPLICATE,
      IngestStatus.DUPLICATE,
      IngestStatus.DUPLICATE,
    ]);
    expect(await value('retrier', 'build_minutes', at(0), at(24))).toEqual({ value: '10', events: 4 });
  });

  test('a batch mixing stored and new events stores the new ones once and reports the others', async () => {
    const first = event('mix-1', 'mixer', 'build.finished', at(6), { minutes: 1, os: 'mac' });
    const second = event('mix-2', 'mixer', 'build.finished', at(6), { minutes: 2, os: 'mac' });
    await client.ingestEvents({ events: [first, second] });
    // The first claim fails on the stored keys and is rolled back; the second stores mix-3 alone.
    const mixed = await client.ingestEvents({
      events: [
        first,
        event('mix-3', 'mixer', 'build.finished', at(6), { minutes: 4, os: 'mac' }),
        { ...second, properties: { minutes: 50, os: 'mac' } },
      ],
    });
    expect(mixed.results.map((r) => r.status)).toEqual([
      IngestStatus.DUPLICATE,
      IngestStatus.ACCEPTED,
      IngestStatus.DUPLICATE_MISMATCH,
    ]);
    expect(await value('mixer', 'build_minutes', at(0), at(24))).toEqual({ value: '7', events: 3 });
  });

  test('two producers sending the same batch at the same moment are counted once', async () => {
    const batch = Array.from({ length: 300 }, (_, n) =>
      event(`race-${n}`, 'racer', 'build.finished', at(3 + (n % 5) / 10), { minutes: 2, os: n % 2 ? 'linux' : 'mac' }),
    );
    const [a, b] = await Promise.all([client.ingestEvents({ events: batch }), client.ingestEvents({ events: batch })]);
    expect(a.acceptedCount + b.acceptedCount).toBe(300);
    expect(a.duplicateCount + b.duplicateCount).toBe(300);
    expect(await value('racer', 'build_minutes', at(0), at(24))).toEqual({ value: '600', events: 300 });
  });

  test('concurrent requests, written together under load, keep their own numbering; a copy counts once', async () => {
    // Request n sends two events of its own and a copy of request n-1's first one.
    const requests = Array.from({ length: 12 }, (_, n) => [
      event(`grp-${n}-a`, 'grouped', 'build.finished', at(4), { minutes: n, os: 'linux' }),
      event(`grp-${n}-b`, 'grouped', 'build.finished', at(4.5), { minutes: 100, os: 'mac' }),
      event(`grp-${(n + 11) % 12}-a`, 'grouped', 'build.finished', at(4), { minutes: (n + 11) % 12, os: 'linux' }),
    ]);
    const answers = await Promise.all(requests.map((events) => client.ingestEvents({ events })));
    for (const [n, answer] of answers.entries()) {
      expect(answer.results.map((r) => [r.index, r.id])).toEqual(requests[n]?.map((e, i) => [i, e.id]));
      expect(answer.results.slice(0, 2).every((r) => r.status !== IngestStatus.REJECTED)).toBe(true);
    }
    for (let n = 0; n < 12; n++) {
      const own = answers[n]?.results[0]?.status;
      const copy = answers[(n + 1) % 12]?.results[2]?.status;
      expect([own, copy].sort()).toEqual([IngestStatus.ACCEPTED, IngestStatus.DUPLICATE]);
    }
    // 0 + 1 + ... + 11 = 66 linux minutes, 12 x 100 mac minutes.
    expect(await value('grouped', 'build_minutes', at(0), at(24))).toEqual({ value: '1266', events: 24 });
  });

  test('batches written in one transaction are answered each in its own numbering, as if one after the other', async () => {
    const batch = (offset: number, events: Parameters<typeof event>[]) => ({
      offset,
      events: events.map((args) => fromProtoUsageEvent(create(UsageEventSchema, event(...args)))),
    });
    const a1: Parameters<typeof event> = ['multi-1', 'multi', 'build.finished', at(9), { minutes: 4, os: 'linux' }];
    const [first, second] = await usage.context.db.transaction((em) =>
      ingestEvents(
        em,
        [
          batch(0, [a1, ['', 'multi', 'build.finished', at(9), { minutes: 1 }]]),
          batch(1000, [
            ['multi-3', 'multi', 'build.finished', at(9), { os: 'linux' }],
            a1,
            ['multi-2', 'multi', 'build.finished', at(9.5), { minutes: 6, os: 'mac' }],
            ['multi-1', 'multi', 'build.finished', at(9), { minutes: 40, os: 'linux' }],
          ]),
        ],
        new Date(),
      ),
    );
    const summary = (r: IngestResult) => [r.index, r.id, r.status, r.field];
    expect(first?.map(summary)).toEqual([
      [0, 'multi-1', IngestStatus.ACCEPTED, ''],
      [1, '', IngestStatus.REJECTED, 'events[1].id'],
    ]);
    expect(second?.map(summary)).toEqual([
      [1000, 'multi-3', IngestStatus.REJECTED, 'events[1000].properties'],
      [1001, 'multi-1', IngestStatus.DUPLICATE, ''],
      [1002, 'multi-2', IngestStatus.ACCEPTED, ''],
      [1003, 'multi-1', IngestStatus.DUPLICATE_MISMATCH, ''],
    ]);
    expect(await value('multi', 'build_minutes', at(0), at(24))).toEqual({ value: '10', events: 2 });
  });

  test('text PostgreSQL cannot store (NUL, unpaired surrogates) is refused per event with its field', async () => {
    const jsonClient = createClient(
      UsageService,
      createConnectTransport({ baseUrl: usage.baseUrl, httpVersion: '1.1', useBinaryFormat: false }),
    );
    const res = await jsonClient.ingestEvents({
      events: [
        event('nul-1', 'nul\u0000customer', 'build.finished', at(6), { minutes: 1 }),
        event('nul-2', 'storer', 'build\u0000finished', at(6), { minutes: 1 }),
        event('nul-3', 'storer', 'build.finished', at(6), { minutes: 1, note: 'a\u0000b' }),
        event('nul-4', 'storer', 'build.finished', at(6), { minutes: 1, 'k\u0000': 'v' }),
        event('nul-5', 'storer', 'build.finished', at(6), { minutes: 1, note: ['\ud800'] }),
        event('nul-6', 'storer', 'build.finished', at(6), { minutes: 7, os: 'linux', note: 'fine \ud83d\ude00' }),
        // A backslash, then the text "u0000": no NUL.
        event('nul-7', 'storer', 'build.finished', at(6), { minutes: 2, path: 'C:\\u0000\\x' }),
      ],
    });
    expect(res.results.map((r) => [r.status, r.rejectReason, r.field])).toEqual([
      [IngestStatus.REJECTED, RejectReason.INVALID_CUSTOMER, 'events[0].customer_external_id'],
      [IngestStatus.REJECTED, RejectReason.INVALID_TYPE, 'events[1].type'],
      [IngestStatus.REJECTED, RejectReason.INVALID_VALUE, 'events[2].properties'],
      [IngestStatus.REJECTED, RejectReason.INVALID_VALUE, 'events[3].properties'],
      [IngestStatus.REJECTED, RejectReason.INVALID_VALUE, 'events[4].properties'],
      [IngestStatus.ACCEPTED, RejectReason.UNSPECIFIED, ''],
      [IngestStatus.ACCEPTED, RejectReason.UNSPECIFIED, ''],
    ]);
    expect(await value('storer', 'build_minutes', at(0), at(24))).toEqual({ value: '9', events: 2 });
  });

  test('more than 1,000 events is INVALID_ARGUMENT on events, and nothing is stored', async () => {
    const batch = Array.from({ length: 1_001 }, (_, n) =>
      event(`big-${n}`, 'big', 'build.finished', at(1), { minutes: 1 }),
    );
    const err = await client.ingestEvents({ events: batch }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.InvalidArgument });
    expect([reason(err as ConnectError), violations(err as ConnectError)]).toEqual(['BATCH_TOO_LARGE', ['events']]);
    expect(await value('big', 'builds', at(0), at(24))).toEqual({ value: '0', events: 0 });
  });

  test('a request_id makes a retry return the first answer', async () => {
    const events = [event('rid-1', 'rid', 'build.finished', at(2), { minutes: 4 })];
    const first = await client.ingestEvents({ requestId: 'batch-1', events });
    const again = await client.ingestEvents({ requestId: 'batch-1', events });
    expect(again).toEqual(first);
    expect(first.results[0]?.status).toBe(IngestStatus.ACCEPTED);
  });
});

describe('period usage', () => {
  test('every aggregation over a period that starts and ends inside hours, computed by hand', async () => {
    const c = 'periodic';
    await client.ingestEvents({
      events: [
        // Before the period (10:29): excluded.
        event('p0', c, 'storage.sampled', at(10 + 29 / 60), { gb: 500 }),
        event('p1', c, 'storage.sampled', at(10.5), { gb: 40 }),
        event('p2', c, 'storage.sampled', at(11.25), { gb: 75.5 }),
        event('p3', c, 'storage.sampled', at(12.9), { gb: 60 }),
        event('p4', c, 'storage.sampled', at(13.2), { gb: 55 }),
        // At the period's end (13:15): excluded (periods are half-open).
        event('p5', c, 'storage.sampled', at(13.25), { gb: 900 }),
        event('u1', c, 'user.seen', at(10.75), { user: 'ana' }),
        event('u2', c, 'user.seen', at(11.5), { user: 'bo' }),
        event('u3', c, 'user.seen', at(12.5), { user: 'ana' }),
        event('u4', c, 'user.seen', at(13.1), { user: 'cy' }),
        event('b1', c, 'build.finished', at(10.6), { minutes: 0.25, os: 'linux' }),
        event('b2', c, 'build.finished', at(12.1), { minutes: 1.5, os: 'win' }),
      ],
    });
    const from = at(10.5);
    const to = at(13.25);
    // Storage samples in [10:30, 13:15): 40, 75.5, 60, 55. Max 75.5; latest is the 13:12 sample, 55.
    expect(await value(c, 'peak_storage', from, to)).toEqual({ value: '75.5', events: 4 });
    expect(await value(c, 'last_storage', from, to)).toEqual({ value: '55', events: 4 });
    // Users: ana, bo, ana, cy: three distinct.
    expect(await value(c, 'active_users', from, to)).toEqual({ value: '3', events: 4 });
    // Minutes: 0.25 + 1.5 = 1.75 over two builds.
    expect(await value(c, 'build_minutes', from, to)).toEqual({ value: '1.75', events: 2 });
    expect(await value(c, 'builds', from, to)).toEqual({ value: '2', events: 2 });
  });

  test('an unknown meter is NOT_FOUND', async () => {
    const missing = await value('x', 'nope', at(0), at(1)).catch((e: unknown) => ConnectError.from(e));
    expect(missing).toMatchObject({ code: Code.NotFound });
    expect(reason(missing as ConnectError)).toBe('METER_NOT_FOUND');
  });

  test('a reversed period is INVALID_ARGUMENT on its end', async () => {
    const reversed = await value('x', 'builds', at(2), at(1)).catch((e: unknown) => ConnectError.from(e));
    expect(reversed).toMatchObject({ code: Code.InvalidArgument });
    expect(violations(reversed as ConnectError)).toEqual(['period.end_time']);
  });

  test.each([
    [
      'customer_external_id',
      { meterKey: 'builds', period: { startTime: timestampFromDate(at(0)), endTime: timestampFromDate(at(1)) } },
    ],
    [
      'meter_key',
      { customerExternalId: 'x', period: { startTime: timestampFromDate(at(0)), endTime: timestampFromDate(at(1)) } },
    ],
    ['period', { customerExternalId: 'x', meterKey: 'builds' }],
    [
      'period.end_time',
      { customerExternalId: 'x', meterKey: 'builds', period: { startTime: timestampFromDate(at(0)) } },
    ],
  ])('without %s it is INVALID_ARGUMENT naming the field, not a value of 0', async (field, request) => {
    const err = await rpcError(client.getPeriodUsage(request));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, [field]]);
    expect(err.rawMessage).toContain(`${field}: required`);
  });

  test.each([
    ['customer_external_id', { customerExternalId: 'nul\u0000customer', meterKey: 'builds' }],
    ['meter_key', { customerExternalId: 'x', meterKey: 'bu\u0000ilds' }],
  ])('text PostgreSQL cannot store in %s is INVALID_ARGUMENT naming the field', async (field, request) => {
    const period = { startTime: timestampFromDate(at(0)), endTime: timestampFromDate(at(1)) };
    const err = await rpcError(client.getPeriodUsage({ ...request, period }));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, [field]]);
  });

  test('a meter key too long to be one is INVALID_ARGUMENT, and the message quotes a short prefix of it', async () => {
    const err = await rpcError(
      client.getPeriodUsage({
        customerExternalId: 'x',
        meterKey: 'k'.repeat(100_000),
        period: { startTime: timestampFromDate(at(0)), endTime: timestampFromDate(at(1)) },
      }),
    );
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['meter_key']]);
    expect(err.rawMessage.length).toBeLessThan(200);
  });
});

describe('a stream', () => {
  test('batches over one stream add up, problems numbered across the stream', async () => {
    async function* batches() {
      yield { events: [event('s1', 'streamer', 'build.finished', at(6), { minutes: 5 })] };
      yield {
        events: [
          event('s2', 'streamer', 'build.finished', at(6), { minutes: 7 }),
          event('s1', 'streamer', 'build.finished', at(6), { minutes: 5 }),
        ],
      };
      yield { events: [event('', 'streamer', 'build.finished', at(6), { minutes: 1 })] };
    }
    const res = await client.ingestEventStream(batches());
    expect([res.acceptedCount, res.duplicateCount, res.rejectedCount]).toEqual([2n, 1n, 1n]);
    expect(res.problems.map((p) => [p.index, p.status, p.field])).toEqual([
      [2, IngestStatus.DUPLICATE, ''],
      [3, IngestStatus.REJECTED, 'events[3].id'],
    ]);
    expect(await value('streamer', 'build_minutes', at(0), at(24))).toEqual({ value: '12', events: 2 });
  });
});

describe('listing events', () => {
  const c = 'lister';
  const ids = (res: Awaited<ReturnType<typeof client.listEvents>>) => res.events.map((e) => e.event?.id);

  beforeAll(async () => {
    await client.ingestEvents({
      events: [
        event('l1', c, 'build.finished', at(1), { minutes: 1, os: 'linux' }),
        event('l2', c, 'build.finished', at(2), { minutes: 2, os: 'mac' }),
        event('l3', c, 'build.finished', at(3), { minutes: 3, os: 'linux' }),
        event('l4', c, 'build.finished', at(4), { minutes: 4, os: 'linux' }),
        event('l5', c, 'user.seen', at(5), { user: 'ana' }),
      ],
    });
  });

  test('newest first', async () => {
    expect(ids(await client.listEvents({ customerExternalId: c }))).toEqual(['l5', 'l4', 'l3', 'l2', 'l1']);
  });

  test('by type', async () => {
    expect(ids(await client.listEvents({ customerExternalId: c, type: 'user.seen' }))).toEqual(['l5']);
  });

  test('by what a meter selects, paged', async () => {
    const first = await client.listEvents({ customerExternalId: c, meterKey: 'linux_minutes', pageSize: 2 });
    expect(ids(first)).toEqual(['l4', 'l3']);
    const second = await client.listEvents({
      customerExternalId: c,
      meterKey: 'linux_minutes',
      pageSize: 2,
      pageToken: first.nextPageToken,
    });
    expect(ids(second)).toEqual(['l1']);
    expect(second.nextPageToken).toBe('');
    expect(await value(c, 'linux_minutes', at(0), at(24))).toEqual({ value: '8', events: 3 });
  });

  test('by range, with their properties', async () => {
    const ranged = await client.listEvents({
      customerExternalId: c,
      range: { startTime: timestampFromDate(at(2)), endTime: timestampFromDate(at(4)) },
    });
    expect(ids(ranged)).toEqual(['l3', 'l2']);
    expect(ranged.events[0]?.event?.properties).toEqual({ minutes: 3, os: 'linux' });
  });

  test('by range, paged', async () => {
    const range = { startTime: timestampFromDate(at(1)), endTime: timestampFromDate(at(5)) };
    const first = await client.listEvents({ customerExternalId: c, range, pageSize: 3 });
    const second = await client.listEvents({
      customerExternalId: c,
      range,
      pageSize: 3,
      pageToken: first.nextPageToken,
    });
    expect([ids(first), ids(second), second.nextPageToken]).toEqual([['l4', 'l3', 'l2'], ['l1'], '']);
  });

  test('a customer is required', async () => {
    const err = await rpcError(client.listEvents({}));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['customer_external_id']]);
  });

  test('an unknown meter is NOT_FOUND', async () => {
    const err = await rpcError(client.listEvents({ customerExternalId: c, meterKey: 'nope' }));
    expect([err.code, reason(err)]).toEqual([Code.NotFound, 'METER_NOT_FOUND']);
  });

  test('a page token of other filters, or not made by the list, is INVALID_ARGUMENT on page_token', async () => {
    const first = await client.listEvents({ customerExternalId: c, pageSize: 2 });
    const other = await rpcError(
      client.listEvents({ customerExternalId: c, type: 'x', pageToken: first.nextPageToken }),
    );
    const forged = await rpcError(client.listEvents({ customerExternalId: c, pageToken: 'not-a-token' }));
    expect([other.code, violations(other), forged.code, violations(forged)]).toEqual([
      Code.InvalidArgument,
      ['page_token'],
      Code.InvalidArgument,
      ['page_token'],
    ]);
  });

  test('a page token whose cursor holds a time outside years 1-9999 is INVALID_ARGUMENT on page_token', async () => {
    const first = await client.listEvents({ customerExternalId: c, pageSize: 2 });
    // The token's filters are those of the list; only its cursor is rewritten, to a time PostgreSQL cannot hold.
    const token = JSON.parse(Buffer.from(first.nextPageToken, 'base64url').toString('utf8')) as { a: string };
    const [, id] = JSON.parse(token.a) as [string, string];
    const forged = { ...token, a: JSON.stringify(['-010000-01-01T00:00:00.000Z', id]) };
    const pageToken = Buffer.from(JSON.stringify(forged)).toString('base64url');
    const err = await rpcError(client.listEvents({ customerExternalId: c, pageSize: 2, pageToken }));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['page_token']]);
  });
});

describe('usage queries', () => {
  const c = 'querier';
  const range = (from: number, to: number) => ({
    startTime: timestampFromDate(at(from)),
    endTime: timestampFromDate(at(to)),
  });
  const rows = (res: Awaited<ReturnType<typeof client.queryUsage>>) => res.buckets.map((b) => [b.group, b.value]);

  beforeAll(async () => {
    await client.ingestEvents({
      events: [
        event('q1', c, 'build.finished', at(18), { minutes: 6, os: 'linux' }),
        event('q2', c, 'build.finished', at(19), { minutes: 5, os: 'linux' }),
        event('q3', c, 'build.finished', at(22.5), { minutes: 1, os: 'linux' }),
        event('q4', c, 'build.finished', at(23.5), { minutes: 2, os: 'mac' }),
        event('q5', c, 'build.finished', at(24.5), { minutes: 3, os: 'linux' }),
        event('q6', c, 'build.finished', at(25.5), { minutes: 4, os: 'mac' }),
      ],
    });
  });

  test('days of a time zone with a half-hour offset (Kolkata days start at 18:30 UTC)', async () => {
    const res = await client.queryUsage({
      customerExternalId: c,
      meterKey: 'build_minutes',
      range: range(0, 48),
      window: Window.DAY,
      timeZone: 'Asia/Kolkata',
    });
    expect(res.buckets.map((b) => [b.window?.startTime?.seconds, b.value])).toEqual([
      [BigInt(at(0).getTime() / 1000), '6'],
      [BigInt(at(18.5).getTime() / 1000), '15'],
      [BigInt(at(42.5).getTime() / 1000), '0'],
    ]);
  });

  test('grouped by a dimension', async () => {
    const grouped = await client.queryUsage({
      customerExternalId: c,
      meterKey: 'build_minutes',
      range: range(0, 48),
      groupBy: ['os'],
    });
    expect(rows(grouped)).toEqual([
      [{ os: 'linux' }, '15'],
      [{ os: 'mac' }, '6'],
    ]);
  });

  test('filtered on a dimension', async () => {
    const filtered = await client.queryUsage({
      customerExternalId: c,
      meterKey: 'build_minutes',
      range: range(0, 48),
      filters: [{ dimension: 'os', values: ['mac'] }],
    });
    expect(rows(filtered)).toEqual([[{}, '6']]);
  });

  test('an event without the dimension matches no filter value, not even the text "\\u0000"', async () => {
    const other = `${c}-no-os`;
    await client.ingestEvents({ events: [event('q-no-os', other, 'build.finished', at(18), { minutes: 7 })] });
    const query = (values: string[]) =>
      client.queryUsage({
        customerExternalId: other,
        meterKey: 'build_minutes',
        range: range(0, 48),
        filters: values.length > 0 ? [{ dimension: 'os', values }] : [],
      });
    expect(rows(await query([]))).toEqual([[{}, '7']]);
    expect(rows(await query(['\\u0000']))).toEqual(rows(await query(['solaris'])));
    expect(rows(await query(['solaris']))).not.toEqual([[{}, '7']]);
  });

  test('by the hour', async () => {
    const hourly = await client.queryUsage({
      customerExternalId: c,
      meterKey: 'build_minutes',
      range: range(22, 24),
      window: Window.HOUR,
    });
    expect(rows(hourly)).toEqual([
      [{}, '1'],
      [{}, '2'],
    ]);
  });

  const fields = async (req: Parameters<typeof client.queryUsage>[0]) => {
    const err = await rpcError(client.queryUsage(req));
    return [err.code, violations(err)];
  };

  test('an unknown time zone is INVALID_ARGUMENT on time_zone, quoting a short prefix of it', async () => {
    const zone = `Mars/${'Base'.repeat(10_000)}`;
    const err = await rpcError(
      client.queryUsage({ customerExternalId: c, meterKey: 'build_minutes', range: range(0, 1), timeZone: zone }),
    );
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['time_zone']]);
    expect(err.rawMessage).toContain('unknown time zone "Mars/BaseBase');
    expect(err.rawMessage.length).toBeLessThan(200);
  });

  test('a dimension the meter does not have is INVALID_ARGUMENT on group_by', async () => {
    expect(
      await fields({ customerExternalId: c, meterKey: 'build_minutes', range: range(0, 1), groupBy: ['colour'] }),
    ).toEqual([Code.InvalidArgument, ['group_by[0]']]);
  });

  test('hourly windows over more than 31 days are INVALID_ARGUMENT on range', async () => {
    expect(
      await fields({ customerExternalId: c, meterKey: 'build_minutes', range: range(0, 24 * 40), window: Window.HOUR }),
    ).toEqual([Code.InvalidArgument, ['range']]);
  });

  test('an unknown window is INVALID_ARGUMENT on window', async () => {
    expect(
      await fields({ customerExternalId: c, meterKey: 'build_minutes', range: range(0, 1), window: 99 as Window }),
    ).toEqual([Code.InvalidArgument, ['window']]);
  });

  test.each([
    ['customer_external_id', { meterKey: 'build_minutes', range: range(0, 1) }],
    ['meter_key', { customerExternalId: c, range: range(0, 1) }],
    ['range', { customerExternalId: c, meterKey: 'build_minutes' }],
  ])('without %s it is INVALID_ARGUMENT naming the field', async (field, request) => {
    expect(await fields(request)).toEqual([Code.InvalidArgument, [field]]);
  });
});

describe('voiding an event', () => {
  const c = 'corrector';
  const month = (t: Date) =>
    [
      new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1)),
      new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 1)),
    ] as const;
  const voidV2 = () =>
    client.voidEvent({ requestId: 'void-1', customerExternalId: c, eventId: 'v2', reason: 'sensor glitch' });
  let voided: Awaited<ReturnType<typeof voidV2>>;

  test('removes it from every aggregation and answers the change of its period', async () => {
    await client.ingestEvents({
      events: [
        event('v1', c, 'storage.sampled', at(30.1), { gb: 10 }),
        event('v2', c, 'storage.sampled', at(30.2), { gb: 80 }),
        event('v3', c, 'storage.sampled', at(30.3), { gb: 30 }),
      ],
    });
    expect(await value(c, 'peak_storage', at(30), at(31))).toEqual({ value: '80', events: 3 });
    voided = await voidV2();
    expect(voided.event?.voided).toBe(true);
    const [start, end] = month(at(30.2));
    const peak = voided.deltas.find((d) => d.meterKey === 'peak_storage');
    expect(peak?.period?.startTime?.seconds).toBe(BigInt(start.getTime() / 1000));
    expect(peak?.period?.endTime?.seconds).toBe(BigInt(end.getTime() / 1000));
    // The month's peak of this customer drops from 80 to 30; the latest sample stays 30; one event fewer.
    expect(peak).toMatchObject({ delta: '-50', value: '30', eventCountDelta: -1n });
    expect(await value(c, 'peak_storage', at(30), at(31))).toEqual({ value: '30', events: 2 });
    expect(await value(c, 'last_storage', at(30), at(31))).toEqual({ value: '30', events: 2 });
  });

  test('is published for invoicing once, with the same changes and its reason', async () => {
    const published: UsageEventVoided[] = [];
    const subscription = await bus.consume({
      stream: 'usage',
      durable: 'test-corrections',
      subjects: ['billing.usage.event.voided'],
      handle: async (d) => void published.push(fromBinary(UsageEventVoidedSchema, d.message.payload)),
    });
    try {
      await waitFor(
        async () => published,
        (events) => events.length > 0,
      );
    } finally {
      await subscription.stop();
    }
    expect(published).toHaveLength(1);
    expect(published[0]?.deltas).toEqual(voided.deltas);
    expect(published[0]?.reason).toBe('sensor glitch');
    expect(await recordedEvents(usage.context.db, usageEventVoided, usageEventAggregate(c, 'v2'))).toHaveLength(1);
  });

  test('a retry answers the same', async () => {
    expect(await voidV2()).toEqual(voided);
  });

  test('voiding it again is FAILED_PRECONDITION, EVENT_VOIDED', async () => {
    const again = await rpcError(
      client.voidEvent({ requestId: 'void-2', customerExternalId: c, eventId: 'v2', reason: 'twice' }),
    );
    expect([again.code, reason(again)]).toEqual([Code.FailedPrecondition, 'EVENT_VOIDED']);
    expect(await recordedEvents(usage.context.db, usageEventVoided, usageEventAggregate(c, 'v2'))).toHaveLength(1);
  });

  test('an unknown event is NOT_FOUND', async () => {
    const missing = await rpcError(
      client.voidEvent({ requestId: 'void-3', customerExternalId: c, eventId: 'nope', reason: '' }),
    );
    expect([missing.code, reason(missing)]).toEqual([Code.NotFound, 'EVENT_NOT_FOUND']);
  });

  test.each([
    ['customer_external_id', { requestId: 'void-4', eventId: 'v1' }],
    ['event_id', { requestId: 'void-5', customerExternalId: c }],
  ])('without %s it is INVALID_ARGUMENT naming the field', async (field, request) => {
    const err = await rpcError(client.voidEvent(request));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, [field]]);
  });
});

describe('amending an event', () => {
  const c = 'amender';

  beforeAll(async () => {
    await client.ingestEvents({ events: [event('a1', c, 'build.finished', at(40.5), { minutes: 10, os: 'linux' })] });
  });

  test('moves its value, also to another hour', async () => {
    const amended = await client.amendEvent({
      requestId: 'amend-1',
      customerExternalId: c,
      eventId: 'a1',
      eventTime: timestampFromDate(at(41.5)),
      properties: { minutes: 12.5, os: 'linux' },
      reason: 'wrong duration',
    });
    expect(amended.event?.amendmentCount).toBe(1);
    expect(amended.deltas.find((d) => d.meterKey === 'build_minutes')).toMatchObject({
      delta: '2.5',
      value: '12.5',
      eventCountDelta: 0n,
    });
    expect(await value(c, 'build_minutes', at(40), at(41))).toEqual({ value: '0', events: 0 });
    expect(await value(c, 'build_minutes', at(41), at(42))).toEqual({ value: '12.5', events: 1 });
  });

  /** The error of an amendment of a1 with `change`. */
  const refusedAmendment = (requestId: string, change: { properties?: JsonObject; eventTime?: Timestamp }) =>
    rpcError(client.amendEvent({ requestId, customerExternalId: c, eventId: 'a1', reason: 'oops', ...change }));

  // Properties a meter cannot read, PostgreSQL cannot store, or with a value out of range are the caller's error.
  test.each([
    ['no value the meter can read', { os: 'linux' }],
    ['a NUL character', { minutes: 1, os: 'li\u0000nux' }],
    ['a value out of range', { minutes: '1e-20000', os: 'linux' }],
  ])('properties with %s are INVALID_ARGUMENT on properties and change nothing', async (_, properties) => {
    const refused = await refusedAmendment(`amend-bad-${JSON.stringify(properties)}`, { properties });
    expect([refused.code, violations(refused)]).toEqual([Code.InvalidArgument, ['properties']]);
    expect(await value(c, 'build_minutes', at(41), at(42))).toEqual({ value: '12.5', events: 1 });
  });

  test('a time more than 5 minutes ahead is INVALID_ARGUMENT on event_time and changes nothing', async () => {
    const refused = await refusedAmendment('amend-future', {
      eventTime: timestampFromDate(new Date(Date.now() + HOUR)),
    });
    expect([refused.code, violations(refused)]).toEqual([Code.InvalidArgument, ['event_time']]);
    expect(await value(c, 'build_minutes', at(41), at(42))).toEqual({ value: '12.5', events: 1 });
  });
});

describe('usage deltas', () => {
  test('ingested usage is published as per-meter deltas whose changes add up to the period value', async () => {
    const c = 'delta-customer';
    const delivered = await deliveredDeltas('test-deltas', c);
    for (const n of [1, 2, 3]) {
      await client.ingestEvents({ events: [event(`d${n}`, c, 'build.finished', at(7), { minutes: n, os: 'linux' })] });
    }
    const minutes = () => delivered.seen.filter((s) => s.meterKey === 'build_minutes').flatMap((s) => s.deltas);
    try {
      await waitFor(
        async () => minutes().at(-1)?.value,
        (last) => last === '6',
      );
      await delivered.settled();
    } finally {
      await delivered.stop();
    }
    expect(minutes().at(-1)).toMatchObject({ value: '6' });
    expect(
      minutes()
        .reduce((sum, d) => sum.plus(d.delta), new Decimal(0))
        .toFixed(),
    ).toBe('6');
    expect(minutes().reduce((sum, d) => sum + d.eventCountDelta, 0n)).toBe(3n);
    // Batched: never more messages than batches.
    expect(delivered.seen.filter((s) => s.meterKey === 'build_minutes').length).toBeLessThanOrEqual(3);
    // Each message the service recorded was delivered once.
    const recorded = await recordedEvents(usage.context.db, meterUsageDelta, meterUsageAggregate(c, 'build_minutes'));
    expect(recorded.map((r) => r.payload)).toEqual(delivered.seen.filter((s) => s.meterKey === 'build_minutes'));
  });
});

describe('usage deltas through corrections', () => {
  test('max, latest and sum stay exact through increments, a void and more usage', async () => {
    const c = 'delta-mix';
    const delivered = await deliveredDeltas('test-deltas-mix', c);
    const deltasOf = (meter: string) => delivered.seen.filter((s) => s.meterKey === meter).flatMap((s) => s.deltas);
    const last = (meter: string) => deltasOf(meter).at(-1)?.value;
    const sumOfDeltas = (meter: string) =>
      deltasOf(meter)
        .reduce((sum, d) => sum.plus(d.delta), new Decimal(0))
        .toFixed();
    const events = (meter: string) => deltasOf(meter).reduce((sum, d) => sum + d.eventCountDelta, 0n);
    try {
      for (const [id, gb, hour] of [
        ['x1', 10, 8],
        ['x2', 50, 8.1],
        ['x3', 30, 8.2],
      ] as const) {
        await client.ingestEvents({ events: [event(id, c, 'storage.sampled', at(hour), { gb })] });
      }
      await waitFor(
        async () => [last('peak_storage'), last('last_storage')],
        ([peak, latest]) => peak === '50' && latest === '30',
      );
      expect([last('peak_storage'), last('last_storage')]).toEqual(['50', '30']);
      await client.voidEvent({ requestId: 'mix-void', customerExternalId: c, eventId: 'x2', reason: 'glitch' });
      await waitFor(
        async () => last('peak_storage'),
        (peak) => peak === '30',
      );
      expect(last('peak_storage')).toBe('30');
      // An event older than the latest, right after the void's recompute: the latest stays x3's.
      await client.ingestEvents({ events: [event('x4', c, 'storage.sampled', at(8.05), { gb: 5 })] });
      await waitFor(
        async () => events('last_storage'),
        (count) => count === 3n,
      );
      expect([events('last_storage'), last('last_storage')]).toEqual([3n, '30']);
      await client.ingestEvents({ events: [event('x5', c, 'storage.sampled', at(8.3), { gb: 20 })] });
      await waitFor(
        async () => last('last_storage'),
        (latest) => latest === '20',
      );
      // Every delta the service recorded was delivered, and nothing waits to be folded: no more will come.
      await delivered.settled();
    } finally {
      await delivered.stop();
    }
    expect([last('peak_storage'), last('last_storage')]).toEqual(['30', '20']);
    // Every delta is the change from the previous published value: they add up to the final value.
    expect([sumOfDeltas('peak_storage'), sumOfDeltas('last_storage')]).toEqual(['30', '20']);
  });
});
