// The billing clock over real gRPC and PostgreSQL: calendar cases that mature systems got wrong, catching up
// after downtime in order, two replicas closing every period exactly once, and test clocks.
import { openDatabase, queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import {
  AnchorKind,
  CancelMode,
  ProrationReason,
  TestClockStatus,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { BillingInterval } from '@billing/proto/billing/type/v1/types_pb';
import {
  subscriptionCreated,
  subscriptionPeriodClosed,
  subscriptionRenewed,
  testClockAdvanced,
  testClockDeleted,
} from '@billing/proto/events/subscription';
import { reason, rpcError, startTestService, teamSpec, testLogger, waitFor } from '@billing/test/harness';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { catalogClient } from '../src/adapter/catalog-client.ts';
import { SUBSCRIPTION_ENTITIES } from '../src/adapter/entities.ts';
import { subscriptionService } from '../src/definition.ts';
import { SUBSCRIPTION_MIGRATIONS } from '../src/migrations/index.ts';
import { runBillingClock } from '../src/service/run-billing-clock.ts';
import { checkSubscriptionSettings } from '../src/settings.ts';
import {
  customerOnClock,
  iso,
  manualClock,
  type Platform,
  planSpec,
  published,
  startPlatform,
  ts,
} from './fixtures.ts';

let p: Platform;
let seq = 0;

beforeAll(async () => {
  p = await startPlatform(
    {
      team: teamSpec(),
      quarterly: planSpec({ name: 'Quarterly', seat: '40.00', interval: BillingInterval.QUARTER }),
      yearly: planSpec({ name: 'Yearly', seat: '150.00', interval: BillingInterval.YEAR }),
    },
    { now: new Date('2026-01-15T00:00:00Z') },
  );
});
afterAll(async () => p.stop());

const onClock = (at: string, zone?: string) => customerOnClock(p, at, zone);

/** Subscribes on a fresh test clock at `start`, advances it to `until`, and returns the closed periods' ends. */
async function boundaries(
  start: string,
  until: string,
  planKey: string,
  extra: Record<string, unknown> = {},
  zone = 'UTC',
) {
  const { clockId, customerId } = await onClock(start, zone);
  const res = await p.subscriptions.createSubscription({
    requestId: p.rid(),
    customerId,
    planKey,
    quantities: [{ chargeKey: 'seats', quantity: '3' }],
    ...extra,
  });
  const id = res.subscription?.id ?? '';
  await p.subscriptions.advanceTestClock({ requestId: p.rid(), id: clockId, frozenTime: ts(until) });
  const closes = await published(p, subscriptionPeriodClosed, id);
  return {
    id,
    created: res,
    starts: [
      iso(res.subscription?.currentPeriod?.startTime),
      ...closes.map((c) => iso(c.payload.closedPeriod?.endTime)),
    ],
    closes,
  };
}

/**
 * Ends a subscription at once, then writes `dueAt` into its row: an ENDED subscription whose row still says it is
 * due, as a row saved under older rules could.
 */
async function endWithStaleDueTime(subscriptionId: string, dueAt: string) {
  await p.subscriptions.cancelSubscription({
    requestId: p.rid(),
    subscriptionId,
    mode: CancelMode.IMMEDIATELY_WITHOUT_CREDIT,
  });
  await p.service.context.db.transaction((em) =>
    queryBound(em, 'update subscription set due_at = $1 where id = $2', [new Date(dueAt), subscriptionId]),
  );
}

/** How many events the outbox holds about a subscription. */
async function eventCount(subscriptionId: string): Promise<number | undefined> {
  const [row] = await queryBound<{ n: number }>(
    p.service.context.db.fork(),
    'select count(*)::integer as n from outbox_event where aggregate_id = $1',
    [subscriptionId],
  );
  return row?.n;
}

/** The due time a subscription's row holds. */
async function dueTime(subscriptionId: string): Promise<Date | null | undefined> {
  const [row] = await queryBound<{ due_at: Date | null }>(
    p.service.context.db.fork(),
    'select due_at from subscription where id = $1',
    [subscriptionId],
  );
  return row?.due_at;
}

describe('calendar cases', () => {
  test('an anniversary on the 31st clamps to short months and comes back to the 31st', async () => {
    const { starts } = await boundaries('2026-01-31T09:30:00Z', '2026-05-01T00:00:00Z', 'team');
    expect(starts).toEqual([
      '2026-01-31T09:30:00.000Z',
      '2026-02-28T09:30:00.000Z',
      '2026-03-31T09:30:00.000Z',
      '2026-04-30T09:30:00.000Z',
    ]);
  });

  test('an anniversary on the 29th is Feb 29 in a leap year', async () => {
    const on29 = await boundaries('2028-01-29T00:00:00Z', '2028-04-01T00:00:00Z', 'team');
    expect(on29.starts.slice(1)).toEqual(['2028-02-29T00:00:00.000Z', '2028-03-29T00:00:00.000Z']);
  });

  test('an anniversary on the 30th is Feb 28 in a common year and the 30th again after', async () => {
    const on30 = await boundaries('2027-01-30T00:00:00Z', '2027-04-01T00:00:00Z', 'team');
    expect(on30.starts.slice(1)).toEqual(['2027-02-28T00:00:00.000Z', '2027-03-30T00:00:00.000Z']);
  });

  test('a day-of-month anchor on the 31st starts with a prorated stub, then bills on the last days of months', async () => {
    const { starts, created, closes } = await boundaries('2026-01-20T10:00:00Z', '2026-04-01T00:00:00Z', 'team', {
      anchor: { kind: AnchorKind.DAY_OF_MONTH, dayOfMonth: 31 },
    });
    expect(starts).toEqual([
      '2026-01-20T10:00:00.000Z',
      '2026-01-31T00:00:00.000Z',
      '2026-02-28T00:00:00.000Z',
      '2026-03-31T00:00:00.000Z',
    ]);
    // The stub is Jan 20 10:00 - Jan 31 00:00 of the calendar period Dec 31 - Jan 31 (31 days, 2,678,400 s):
    // 914,400 s remain, so one seat costs 15 x 914400/2678400 = 5.120967741935 (12 decimals), three 15.362903225805.
    const items = created.prorationItems;
    expect(items.map((i) => [i.reason, i.amount?.amount, iso(i.fullPeriod?.startTime)])).toEqual([
      [ProrationReason.PARTIAL_PERIOD, '15.362903225805', '2025-12-31T00:00:00.000Z'],
    ]);
    const [event] = await published(p, subscriptionCreated, created.subscription?.id);
    expect(event?.payload.prorationItems.map((i) => i.id)).toEqual(items.map((i) => i.id));
    expect(closes.map((c) => c.payload.periodNumber)).toEqual([1, 2, 3]);
  });

  test('a Feb 29 yearly anniversary is Feb 28 in common years and Feb 29 again in leap years', async () => {
    const { starts } = await boundaries('2028-02-29T12:00:00Z', '2032-03-01T00:00:00Z', 'yearly');
    expect(starts).toEqual([
      '2028-02-29T12:00:00.000Z',
      '2029-02-28T12:00:00.000Z',
      '2030-02-28T12:00:00.000Z',
      '2031-02-28T12:00:00.000Z',
      '2032-02-29T12:00:00.000Z',
    ]);
  });

  test('quarterly periods from Nov 30 keep the 30th after February', async () => {
    const { starts } = await boundaries('2026-11-30T00:00:00Z', '2027-09-01T00:00:00Z', 'quarterly');
    expect(starts).toEqual([
      '2026-11-30T00:00:00.000Z',
      '2027-02-28T00:00:00.000Z',
      '2027-05-30T00:00:00.000Z',
      '2027-08-30T00:00:00.000Z',
    ]);
  });

  test('boundaries stay at local midnight in New York across the DST changes', async () => {
    const { starts, closes } = await boundaries(
      '2026-03-01T05:00:00Z',
      '2026-12-02T00:00:00Z',
      'team',
      {},
      'America/New_York',
    );
    // EST (UTC-5) until Mar 8, EDT (UTC-4) until Nov 1, EST again.
    expect(starts.slice(0, 3)).toEqual([
      '2026-03-01T05:00:00.000Z',
      '2026-04-01T04:00:00.000Z',
      '2026-05-01T04:00:00.000Z',
    ]);
    expect(starts.slice(-2)).toEqual(['2026-11-01T04:00:00.000Z', '2026-12-01T05:00:00.000Z']);
    expect(closes[0]?.payload.timeZone).toBe('America/New_York');
  });

  test('two changes at the same instant leave no empty segment', async () => {
    const { clockId, customerId } = await onClock('2026-01-15T00:00:00Z');
    const created = await p.subscriptions.createSubscription({
      requestId: p.rid(),
      customerId,
      planKey: 'team',
      quantities: [{ chargeKey: 'seats', quantity: '3' }],
    });
    const id = created.subscription?.id ?? '';
    await p.subscriptions.advanceTestClock({ requestId: p.rid(), id: clockId, frozenTime: ts('2026-02-01T00:00:00Z') });
    const up = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: id,
      quantities: [{ chargeKey: 'seats', quantity: '5' }],
    });
    const down = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: id,
      quantities: [{ chargeKey: 'seats', quantity: '4' }],
    });
    expect([up.prorationItems[0]?.amount?.amount, down.prorationItems[0]?.amount?.amount]).toEqual([
      '13.548387096774',
      '-6.774193548387',
    ]);
    await p.subscriptions.advanceTestClock({ requestId: p.rid(), id: clockId, frozenTime: ts('2026-02-15T00:00:00Z') });
    const [closed] = await published(p, subscriptionPeriodClosed, id);
    expect(
      closed?.payload.segments.map((s) => [
        s.quantities[0]?.quantity,
        iso(s.period?.startTime),
        iso(s.period?.endTime),
      ]),
    ).toEqual([
      ['3', '2026-01-15T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
      ['4', '2026-02-01T00:00:00.000Z', '2026-02-15T00:00:00.000Z'],
    ]);
  });
});

describe('the billing clock on real time', () => {
  test('a running service renews on its own once the clock passes a period end', async () => {
    const bus = createMemoryBus();
    const clock = manualClock(new Date('2026-03-01T00:00:00Z'));
    const running = await startTestService(
      subscriptionService({
        catalog: catalogClient(p.catalog.baseUrl),
        testClocksEnabled: false,
        billingClockIntervalMs: 20,
      }),
      { bus, clock },
    );
    try {
      const transport = createGrpcTransport({ baseUrl: running.baseUrl });
      const customers = createClient(CustomerService, transport);
      const subscriptions = createClient(SubscriptionService, transport);
      const customer = (
        await customers.createCustomer({
          requestId: p.rid(),
          customer: { externalId: 'self-driving', name: 'Self', billing: { currencyCode: 'USD' } },
        })
      ).customer;
      const sub = (
        await subscriptions.createSubscription({ requestId: p.rid(), customerId: customer?.id ?? '', planKey: 'team' })
      ).subscription;
      clock.set(new Date('2026-04-01T00:00:01Z'));
      const renewed = await waitFor(
        async () => (await subscriptions.getSubscription({ id: sub?.id ?? '' })).subscription,
        (now) => now?.periodNumber === 2,
      );
      expect([renewed?.periodNumber, iso(renewed?.currentPeriod?.startTime)]).toEqual([2, '2026-04-01T00:00:00.000Z']);
    } finally {
      await running.destroy();
      await bus.close();
    }
  });

  test('two replicas catching up after downtime close every period exactly once, in order', async () => {
    p.clock.set(new Date('2026-01-15T00:00:00Z'));
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      const customer = (
        await p.customers.createCustomer({
          requestId: p.rid(),
          customer: { externalId: `rt-${seq++}`, name: 'Real time', billing: { currencyCode: 'USD' } },
        })
      ).customer;
      const res = await p.subscriptions.createSubscription({
        requestId: p.rid(),
        customerId: customer?.id ?? '',
        planKey: 'team',
        startTime: ts(`2026-01-15T0${i % 10}:00:00Z`),
      });
      ids.push(res.subscription?.id ?? '');
    }
    // Down for three and a half months: every subscription owes closes on Feb 15, Mar 15 and Apr 15.
    p.clock.set(new Date('2026-05-01T00:00:00Z'));
    const second = await openDatabase({
      service: 'subscription',
      url: p.service.database.url,
      entities: SUBSCRIPTION_ENTITIES,
      migrations: SUBSCRIPTION_MIGRATIONS,
      logger: testLogger,
    });
    try {
      const [a, b] = await Promise.all([
        runBillingClock(p.service.context.db, p.clock.now, 'replica-a'),
        runBillingClock(second, p.clock.now, 'replica-b'),
      ]);
      // Pending starts (those after midnight) activate first: 24 starts at most, plus 72 period steps.
      const pending = ids.length - 1 - Math.floor((ids.length - 1) / 10);
      expect(a + b).toBe(72 + pending);
    } finally {
      await second.close();
    }
    for (const id of ids) {
      const closes = await published(p, subscriptionPeriodClosed, id);
      expect(closes.map((c) => c.payload.periodNumber)).toEqual([1, 2, 3]);
      expect(closes.map((c) => c.occurredAt.getUTCDate())).toEqual([15, 15, 15]);
      expect((await published(p, subscriptionRenewed, id)).length).toBe(3);
    }
    const rows = await queryBound<{ n: number }>(
      p.service.context.db.fork(),
      'select count(*)::integer as n from period_close',
      [],
    );
    expect(rows[0]?.n).toBeGreaterThanOrEqual(72);
  });

  test('a claimed subscription with nothing due gets its due time cleared instead of being claimed again', async () => {
    // After the catch-up above, nothing real-time is due before May 15.
    const now = new Date('2026-05-02T00:00:00Z');
    p.clock.set(now);
    const customer = (
      await p.customers.createCustomer({
        requestId: p.rid(),
        customer: { externalId: `rt-${seq++}`, name: 'Ended', billing: { currencyCode: 'USD' } },
      })
    ).customer;
    const created = await p.subscriptions.createSubscription({
      requestId: p.rid(),
      customerId: customer?.id ?? '',
      planKey: 'team',
    });
    const id = created.subscription?.id ?? '';
    await endWithStaleDueTime(id, '2026-05-01T00:00:00Z');
    const db = p.service.context.db;
    const [before] = await queryBound<{ n: number }>(db.fork(), 'select count(*)::integer as n from outbox_event', []);
    let claims = 0;
    const clock = () => {
      claims += 1;
      if (claims > 20) throw new Error('the billing clock keeps claiming the same subscription');
      return now;
    };
    expect(await runBillingClock(db, clock)).toBe(0);
    expect(await dueTime(id)).toBeNull();
    const [after] = await queryBound<{ n: number }>(db.fork(), 'select count(*)::integer as n from outbox_event', []);
    expect(after?.n).toBe(before?.n);
  });
});

describe('test clocks', () => {
  test('an advance moves the clock and says so', async () => {
    const { clockId } = await onClock('2026-01-01T00:00:00Z');
    const res = await p.subscriptions.advanceTestClock({
      requestId: p.rid(),
      id: clockId,
      frozenTime: ts('2026-02-01T00:00:00Z'),
    });
    expect(iso(res.testClock?.frozenTime)).toBe('2026-02-01T00:00:00.000Z');
    expect(res.testClock?.customerCount).toBe(1);
    const [event] = await published(p, testClockAdvanced, clockId);
    expect(iso(event?.payload.previousTime)).toBe('2026-01-01T00:00:00.000Z');
  });

  test('an advance to an earlier time is refused', async () => {
    const { clockId } = await onClock('2026-02-01T00:00:00Z');
    const back = await rpcError(
      p.subscriptions.advanceTestClock({ requestId: p.rid(), id: clockId, frozenTime: ts('2026-01-15T00:00:00Z') }),
    );
    expect(back.code).toBe(Code.InvalidArgument);
  });

  test('an advance goes past a subscription whose row says it is due while nothing is, and renews the others', async () => {
    const { customerId, advance } = await onClock('2026-01-01T00:00:00Z');
    const live = (await p.subscriptions.createSubscription({ requestId: p.rid(), customerId, planKey: 'team' }))
      .subscription;
    await advance('2026-01-15T00:00:00Z');
    const ended = (await p.subscriptions.createSubscription({ requestId: p.rid(), customerId, planKey: 'team' }))
      .subscription;
    const endedId = ended?.id ?? '';
    // Due before the live one.
    await endWithStaleDueTime(endedId, '2026-01-15T00:00:00Z');
    const before = await eventCount(endedId);
    const res = await advance('2026-03-01T00:00:00Z');
    expect(iso(res.testClock?.frozenTime)).toBe('2026-03-01T00:00:00.000Z');
    const renewed = (await p.subscriptions.getSubscription({ id: live?.id ?? '' })).subscription;
    expect([renewed?.periodNumber, iso(renewed?.currentPeriod?.startTime)]).toEqual([3, '2026-03-01T00:00:00.000Z']);
    expect(await dueTime(endedId)).toBeNull();
    expect(await eventCount(endedId)).toBe(before);
  });

  /** Runs `work` while another transaction holds the clock's row, as an advance in progress does. */
  function whileHeld<T>(clockId: string, work: () => Promise<T>): Promise<T> {
    return p.service.context.db.transaction(async (em) => {
      await queryBound(em, 'select id from test_clock where id = $1 for update', [clockId]);
      return work();
    });
  }

  test('while another advance holds the clock, it reads ADVANCING, and READY after', async () => {
    const { clockId } = await onClock('2026-01-01T00:00:00Z');
    const during = await whileHeld(clockId, () => p.subscriptions.getTestClock({ id: clockId }));
    expect(during.testClock?.status).toBe(TestClockStatus.ADVANCING);
    const clock = await p.subscriptions.getTestClock({ id: clockId });
    expect(clock.testClock?.status).toBe(TestClockStatus.READY);
  });

  test('while another advance holds the clock, an advance is refused with TEST_CLOCK_BUSY and moves nothing', async () => {
    const { clockId } = await onClock('2026-01-01T00:00:00Z');
    const err = await whileHeld(clockId, () =>
      rpcError(
        p.subscriptions.advanceTestClock({ requestId: p.rid(), id: clockId, frozenTime: ts('2026-02-01T00:00:00Z') }),
      ),
    );
    expect([err.code, reason(err)]).toEqual([Code.FailedPrecondition, 'TEST_CLOCK_BUSY']);
    const clock = await p.subscriptions.getTestClock({ id: clockId });
    expect(iso(clock.testClock?.frozenTime)).toBe('2026-01-01T00:00:00.000Z');
  });

  test('deleting a clock deletes its customers and their subscriptions, and says which', async () => {
    const { clockId, customerId } = await onClock('2026-01-01T00:00:00Z');
    const sub = await p.subscriptions.createSubscription({ requestId: p.rid(), customerId, planKey: 'team' });
    await p.subscriptions.deleteTestClock({ requestId: p.rid(), id: clockId });
    const gone = await rpcError(p.subscriptions.getSubscription({ id: sub.subscription?.id ?? '' }));
    expect([gone.code, reason(gone)]).toEqual([Code.NotFound, 'SUBSCRIPTION_NOT_FOUND']);
    const [event] = await published(p, testClockDeleted, clockId);
    expect(event?.payload.customerIds).toEqual([customerId]);
  });

  test('without the setting test clocks are refused with TEST_CLOCKS_DISABLED', async () => {
    const bus = createMemoryBus();
    const locked = await startTestService(
      subscriptionService({
        catalog: catalogClient(p.catalog.baseUrl),
        testClocksEnabled: false,
        billingClockIntervalMs: 0,
      }),
      { bus },
    );
    try {
      const client = createClient(SubscriptionService, createGrpcTransport({ baseUrl: locked.baseUrl }));
      const err = await rpcError(
        client.createTestClock({ requestId: p.rid(), name: 'x', frozenTime: ts('2026-01-01T00:00:00Z') }),
      );
      expect([err.code, reason(err)]).toEqual([Code.FailedPrecondition, 'TEST_CLOCKS_DISABLED']);
    } finally {
      await locked.destroy();
      await bus.close();
    }
  });

  const settings = { catalogUrl: 'http://x', billingClockIntervalMs: 1000 };

  test('production refuses the test clock setting', () => {
    expect(() => checkSubscriptionSettings({ ...settings, testClocks: true, environment: 'production' })).toThrow(
      /production/,
    );
  });

  test('staging allows the test clock setting', () => {
    expect(() => checkSubscriptionSettings({ ...settings, testClocks: true, environment: 'staging' })).not.toThrow();
  });
});
