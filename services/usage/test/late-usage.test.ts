// Usage counted in subscription periods, and late usage (S11), across real catalog, subscription and usage
// services on one bus: events of an open period go out as meter deltas of that subscription period; once the
// period closes, an event falling in it is flagged late and published as late usage with its id.
import { catalogService } from '@billing/catalog';
import { queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { Decimal } from '@billing/money';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import type { Customer, Subscription, TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { meterLateUsageRecorded, meterUsageDelta } from '@billing/proto/events/usage';
import { catalogClient, subscriptionService } from '@billing/subscription';
import {
  buildMinutes,
  buildMinutesMeter,
  privateRepos,
  recordedEvents,
  startTestService,
  type TestService,
  teamSpec,
  waitFor,
} from '@billing/test/harness';
import type { DescMessage } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { usageService } from '../src/definition.ts';

const bus = createMemoryBus();
let catalog: TestService;
let subscription: TestService;
let usage: TestService;
let subscriptions: Client<typeof SubscriptionService>;
let customers: Client<typeof CustomerService>;
let usageApi: Client<typeof UsageService>;
let n = 0;
const rid = () => `late-${Date.now()}-${n++}`;
const ts = (iso: string) => timestampFromDate(new Date(iso));

beforeAll(async () => {
  catalog = await startTestService(catalogService, { bus });
  const catalogApi = createClient(CatalogService, createGrpcTransport({ baseUrl: catalog.baseUrl }));
  await catalogApi.createMeter({ requestId: rid(), meter: buildMinutesMeter });
  for (const feature of [privateRepos, buildMinutes]) await catalogApi.createFeature({ requestId: rid(), feature });
  await catalogApi.createPlan({ requestId: rid(), key: 'team', spec: teamSpec() });
  await catalogApi.publishPlan({ requestId: rid(), planKey: 'team' });
  subscription = await startTestService(
    subscriptionService({
      catalog: catalogClient(catalog.baseUrl),
      testClocksEnabled: true,
      billingClockIntervalMs: 0,
    }),
    { bus },
  );
  usage = await startTestService(usageService, { bus });
  subscriptions = createClient(SubscriptionService, createGrpcTransport({ baseUrl: subscription.baseUrl }));
  customers = createClient(CustomerService, createGrpcTransport({ baseUrl: subscription.baseUrl }));
  usageApi = createClient(UsageService, createGrpcTransport({ baseUrl: usage.baseUrl }));
});

afterAll(async () => {
  await usage.destroy();
  await subscription.destroy();
  await catalog.destroy();
  await bus.close();
});

const usageEvents = <S extends DescMessage>(event: { type: string; schema: S }) =>
  recordedEvents(usage.context.db, event).then((events) => events.map((e) => e.payload));

async function periods() {
  return queryBound<{ period_start: Date; closed: boolean }>(
    usage.context.db.fork(),
    "select period_start, closed from billing_period where customer_external_id = 'late-co' order by period_start",
    [],
  );
}

/** A customer billed in USD on a test clock of its own, frozen at `frozenTime`. */
async function customerOnTestClock(externalId: string, name: string, frozenTime: string) {
  const clock = (
    await subscriptions.createTestClock({ requestId: rid(), name: externalId, frozenTime: ts(frozenTime) })
  ).testClock;
  const customer = (
    await customers.createCustomer({
      requestId: rid(),
      customer: { externalId, name, testClockId: clock?.id, billing: { currencyCode: 'USD' } },
    })
  ).customer;
  return { clock, customer };
}

const iso = (t: Parameters<typeof timestampDate>[0] | undefined) => (t ? timestampDate(t).toISOString() : undefined);

describe('usage in a subscription period, and late usage once it closed', () => {
  let sub: Subscription | undefined;
  let clock: TestClock | undefined;
  const send = (id: string, time: string, minutes: number) =>
    usageApi.ingestEvents({
      events: [
        { id, customerExternalId: 'late-co', type: 'build.finished', eventTime: ts(time), properties: { minutes } },
      ],
    });

  beforeAll(async () => {
    let customer: Customer | undefined;
    ({ clock, customer } = await customerOnTestClock('late-co', 'Late Co', '2026-01-15T10:00:00Z'));
    sub = (
      await subscriptions.createSubscription({ requestId: rid(), customerId: customer?.id ?? '', planKey: 'team' })
    ).subscription;
    await waitFor(periods, (rows) => rows.length === 1);
  });

  test('an event of the open period is on time and goes out as a meter delta of that subscription period', async () => {
    const onTime = await send('b-1', '2026-01-20T00:00:00Z', 5);
    expect(onTime.results[0]?.late).toBe(false);
    const [delta] = await waitFor(
      () => usageEvents(meterUsageDelta),
      (events) => events.length === 1,
    );
    expect(
      delta?.deltas.map((d) => [
        iso(d.period?.startTime),
        iso(d.period?.endTime),
        d.subscriptionId,
        d.delta,
        d.periodClosed,
      ]),
    ).toEqual([['2026-01-15T10:00:00.000Z', '2026-02-15T10:00:00.000Z', sub?.id, '5', false]]);
  });

  test('once the period closed, an event falling in it is late and goes out as late usage with its id', async () => {
    await subscriptions.advanceTestClock({
      requestId: rid(),
      id: clock?.id ?? '',
      frozenTime: ts('2026-02-16T00:00:00Z'),
    });
    await waitFor(periods, (rows) => rows.length === 2 && rows[0]?.closed === true);
    const late = await send('b-2', '2026-01-25T00:00:00Z', 7);
    expect(late.results[0]?.late).toBe(true);
    const [recorded] = await waitFor(
      () => usageEvents(meterLateUsageRecorded),
      (events) => events.length === 1,
    );
    expect(recorded?.eventIds).toEqual(['b-2']);
    expect(recorded?.deltas.map((d) => [iso(d.period?.startTime), d.delta, d.value, d.periodClosed])).toEqual([
      ['2026-01-15T10:00:00.000Z', '7', '12', true],
    ]);
  });

  test('an event of the next period is on time and goes out as a meter delta of that period', async () => {
    const current = await send('b-3', '2026-02-15T12:00:00Z', 1);
    expect(current.results[0]?.late).toBe(false);
    const deltas = await waitFor(
      () => usageEvents(meterUsageDelta),
      (events) => events.length === 2,
    );
    expect(deltas[1]?.deltas.map((d) => [iso(d.period?.startTime), d.delta, d.periodClosed])).toEqual([
      ['2026-02-15T10:00:00.000Z', '1', false],
    ]);
  });

  test("the closed period's usage counts the late event, and the listing flags it", async () => {
    const period = await usageApi.getPeriodUsage({
      customerExternalId: 'late-co',
      meterKey: 'build_minutes',
      period: { startTime: ts('2026-01-15T10:00:00Z'), endTime: ts('2026-02-15T10:00:00Z') },
    });
    expect([period.value, period.eventCount, period.lateEventCount]).toEqual(['12', 2n, 1n]);
    const listed = await usageApi.listEvents({ customerExternalId: 'late-co' });
    expect(listed.events.map((e) => [e.event?.id, e.late])).toEqual([
      ['b-3', false],
      ['b-2', true],
      ['b-1', false],
    ]);
  });

  test('voiding an event of the closed period is announced once, by the void', async () => {
    // The recompute the void asks for brings the published value up to date without a second (late usage) message.
    const voided = await usageApi.voidEvent({
      requestId: rid(),
      customerExternalId: 'late-co',
      eventId: 'b-1',
      reason: 'test',
    });
    expect(voided.deltas.map((d) => [d.delta, d.value, d.periodClosed, d.subscriptionId])).toEqual([
      ['-5', '7', true, sub?.id],
    ]);
    // A later event's delta shows the pass that recomputed the closed period is done.
    await send('b-4', '2026-02-16T00:00:00Z', 2);
    await waitFor(
      () => usageEvents(meterUsageDelta),
      (events) => events.length === 3,
    );
    expect((await usageEvents(meterLateUsageRecorded)).length).toBe(1);
    const published = await queryBound<{ value: string }>(
      usage.context.db.fork(),
      "select value::text as value from usage_published_value where customer_external_id = 'late-co' and period_start = $1",
      [new Date('2026-01-15T10:00:00Z')],
    );
    expect(published.map((r) => new Decimal(r.value).toFixed())).toEqual(['7']);
  });

  test('amending the late event into the open period makes it on time', async () => {
    await usageApi.amendEvent({
      requestId: rid(),
      customerExternalId: 'late-co',
      eventId: 'b-2',
      eventTime: ts('2026-02-20T00:00:00Z'),
      reason: 'test',
    });
    const after = await usageApi.listEvents({ customerExternalId: 'late-co' });
    expect(after.events.find((e) => e.event?.id === 'b-2')?.late).toBe(false);
  });
});

test('usage ingested before its subscription period is known is published for that period once it is', async () => {
  const { customer } = await customerOnTestClock('early-co', 'Early Co', '2026-03-01T10:00:00Z');
  const deltasOf = async () =>
    (await usageEvents(meterUsageDelta)).filter((d) => d.customerExternalId === 'early-co').flatMap((d) => d.deltas);
  // The event arrives before usage knows any period of early-co (as when the period events lag): it counts in
  // the calendar month.
  await usageApi.ingestEvents({
    events: [
      {
        id: 'e-1',
        customerExternalId: 'early-co',
        type: 'build.finished',
        eventTime: ts('2026-03-05T00:00:00Z'),
        properties: { minutes: 9 },
      },
    ],
  });
  const [month] = await waitFor(deltasOf, (deltas) => deltas.length === 1);
  expect([iso(month?.period?.startTime), month?.subscriptionId, month?.delta]).toEqual([
    '2026-03-01T00:00:00.000Z',
    '',
    '9',
  ]);

  const sub = (
    await subscriptions.createSubscription({ requestId: rid(), customerId: customer?.id ?? '', planKey: 'team' })
  ).subscription;
  const deltas = await waitFor(deltasOf, (found) => found.length === 2);
  expect(
    deltas[1] && [iso(deltas[1].period?.startTime), deltas[1].subscriptionId, deltas[1].delta, deltas[1].value],
  ).toEqual(['2026-03-01T10:00:00.000Z', sub?.id, '9', '9']);
});
