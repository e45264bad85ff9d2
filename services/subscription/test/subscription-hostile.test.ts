// Malformed and hostile input never yields INTERNAL and never changes state: random customers, quantities,
// anchors, trial lengths, overrides, enum numbers and times are sent to the subscription service, and every
// answer is OK or a clean refusal that left the subscription as it was. Reads without the id they need, unknown
// enum values, ids longer than any id and times from which a period or trial would be computed wrong or end
// outside a Timestamp's range are INVALID_ARGUMENT naming the field; an id as long as the contract allows is
// looked up.

import { AnchorKind } from '@billing/proto/billing/subscription/v1/resources_pb';
import { BillingInterval } from '@billing/proto/billing/type/v1/types_pb';
import { outcome, reason, rpcError, teamSpec, violations } from '@billing/test/harness';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { customerOnClock, iso, type Platform, planSpec, startPlatform, ts } from './fixtures.ts';

let p: Platform;
let subscriptionId = '';
let customerId = '';

const CLEAN_REFUSALS = new Set([Code.InvalidArgument, Code.AlreadyExists, Code.FailedPrecondition, Code.NotFound]);

beforeAll(async () => {
  p = await startPlatform({
    team: teamSpec(),
    yearly: planSpec({ name: 'Yearly', seat: '120.00', interval: BillingInterval.YEAR }),
  });
  const clock = (
    await p.subscriptions.createTestClock({ requestId: p.rid(), name: 'h', frozenTime: ts('2026-01-15T00:00:00Z') })
  ).testClock;
  const customer = (
    await p.customers.createCustomer({
      requestId: p.rid(),
      customer: { externalId: 'hostile', name: 'Hostile', testClockId: clock?.id, billing: { currencyCode: 'USD' } },
    })
  ).customer;
  customerId = customer?.id ?? '';
  const sub = await p.subscriptions.createSubscription({ requestId: p.rid(), customerId, planKey: 'team' });
  subscriptionId = sub.subscription?.id ?? '';
});
afterAll(async () => p.stop());

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', '0', '-1', '1e3', '3', '2.5', '0.0000000000001', '9'.repeat(40), 'NaN', 'seats', 'support'),
);
const enumNumber = fc.integer({ min: -2, max: 9 });
const quantities = fc.array(fc.record({ chargeKey: text, quantity: text }), { maxLength: 3 });
const addons = fc.array(fc.record({ addonKey: text, quantity: text }), { maxLength: 2 });
const overrides = fc.array(
  fc.record({
    chargeKey: fc.constantFrom('seats', 'build_minutes', 'nope', ''),
    unitAmount: text,
    includedUnits: text,
    minimumAmount: text,
    tiers: fc.array(fc.record({ upTo: text, unitAmount: text, flatAmount: text }), { maxLength: 2 }),
  }),
  { maxLength: 2 },
);
const time = fc.option(
  fc.integer({ min: -10_000_000_000, max: 10_000_000_000 }).map((s) => ({ seconds: BigInt(s), nanos: 0 })),
  {
    nil: undefined,
  },
);

test('random subscription requests are answered OK or refused cleanly, and refusals change nothing', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        planKey: fc.constantFrom('team', 'nope', '', 'TEAM'),
        planVersion: fc.integer({ min: -2, max: 3 }),
        quantities,
        addons,
        overrides,
        anchor: fc.record({ kind: enumNumber, dayOfMonth: fc.integer({ min: -3, max: 40 }) }),
        trialDays: fc.option(fc.integer({ min: -5, max: 1_000 }), { nil: undefined }),
        startTime: time,
        currencyCode: fc.constantFrom('', 'USD', 'EUR', 'usd', 'XXX'),
        mode: enumNumber,
        timing: enumNumber,
        metadata: fc.dictionary(fc.string({ maxLength: 45 }), fc.string({ maxLength: 3 }), { maxKeys: 3 }),
      }),
      async (r) => {
        const before = (await p.subscriptions.getSubscription({ id: subscriptionId })).subscription;
        const results = [
          await outcome(
            p.subscriptions.createSubscription({
              requestId: p.rid(),
              customerId,
              planKey: r.planKey,
              planVersion: r.planVersion,
              quantities: r.quantities,
              addons: r.addons,
              priceOverrides: r.overrides,
              anchor: r.anchor,
              trialDays: r.trialDays,
              startTime: r.startTime,
              currencyCode: r.currencyCode,
              metadata: r.metadata,
            }),
          ),
          await outcome(
            p.subscriptions.changeQuantity({
              requestId: p.rid(),
              subscriptionId,
              quantities: r.quantities,
              addons: r.addons,
            }),
          ),
          await outcome(
            p.subscriptions.changePlan({
              requestId: p.rid(),
              subscriptionId,
              planKey: r.planKey,
              planVersion: r.planVersion,
              quantities: r.quantities,
              priceOverrides: r.overrides,
              timing: r.timing,
            }),
          ),
          await outcome(
            p.subscriptions.previewChange({ subscriptionId, quantities: r.quantities, effectiveTime: r.startTime }),
          ),
          await outcome(
            p.subscriptions.cancelSubscription({ requestId: p.rid(), subscriptionId: `x${r.planKey}`, mode: r.mode }),
          ),
        ];
        for (const result of results) {
          if (result !== 'ok') expect(CLEAN_REFUSALS.has(result)).toBe(true);
        }
        const after = (await p.subscriptions.getSubscription({ id: subscriptionId })).subscription;
        if (results[1] !== 'ok' && results[2] !== 'ok') expect(after).toEqual(before);
      },
    ),
    { numRuns: 60 },
  );
});

describe('reads without the id they need are refused naming it', () => {
  test.each([
    ['GetSubscription', () => p.subscriptions.getSubscription({}), 'id'],
    ['ListProrationItems', () => p.subscriptions.listProrationItems({}), 'subscription_id'],
    ['GetTestClock', () => p.subscriptions.getTestClock({}), 'id'],
    ['GetCustomer', () => p.customers.getCustomer({}), 'key'],
    ['GetCustomerTree', () => p.customers.getCustomerTree({}), 'customer_id'],
  ])('%s', async (_name, call, field) => {
    const err = await rpcError(call());
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, [field]]);
  });
});

describe('unknown enum values are refused naming the field', () => {
  // A number no enum of the contract has (typed as a plain number, as a decoder hands it over).
  const UNKNOWN: number = 99;
  test.each([
    ['ListSubscriptions states', () => p.subscriptions.listSubscriptions({ states: [UNKNOWN] }), 'states[0]'],
    [
      'CancelSubscription mode',
      () => p.subscriptions.cancelSubscription({ requestId: p.rid(), subscriptionId, mode: UNKNOWN }),
      'mode',
    ],
    [
      'ChangePlan timing',
      () => p.subscriptions.changePlan({ requestId: p.rid(), subscriptionId, planKey: 'team', timing: UNKNOWN }),
      'timing',
    ],
    [
      'CreateSubscription anchor kind',
      () =>
        p.subscriptions.createSubscription({
          requestId: p.rid(),
          customerId,
          planKey: 'team',
          anchor: { kind: UNKNOWN },
        }),
      'anchor.kind',
    ],
    [
      'SetCustomerParent bill_to',
      () => p.customers.setCustomerParent({ requestId: p.rid(), customerId, billTo: UNKNOWN }),
      'bill_to',
    ],
    [
      'CreateCustomer payment terms',
      () =>
        p.customers.createCustomer({
          requestId: p.rid(),
          customer: { externalId: 'enum', name: 'Enum', billing: { paymentTerms: UNKNOWN } },
        }),
      'customer.billing.payment_terms',
    ],
  ])('%s', async (_name, call, field) => {
    const err = await rpcError(call());
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, [field]]);
  });
});

test('an id longer than any id is refused naming it, and the answer does not echo it', async () => {
  const err = await rpcError(p.subscriptions.getSubscription({ id: `sub_${'x'.repeat(1_000_000)}` }));
  expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['id']]);
  expect(err.rawMessage.length).toBeLessThan(200);
});

test('an unknown id is NOT_FOUND, quoting only a short prefix of it', async () => {
  const err = await rpcError(p.subscriptions.getSubscription({ id: `sub_${'x'.repeat(60)}` }));
  expect(err.code).toBe(Code.NotFound);
  expect(err.rawMessage).toBe(`no subscription "sub_${'x'.repeat(36)}…"`);
});

describe('an id as long as the contract allows is looked up', () => {
  const id = (prefix: string) => `${prefix}${'x'.repeat(128 - prefix.length)}`;
  test.each([
    ['GetSubscription', () => p.subscriptions.getSubscription({ id: id('sub_') }), 'SUBSCRIPTION_NOT_FOUND'],
    ['GetTestClock', () => p.subscriptions.getTestClock({ id: id('clk_') }), 'TEST_CLOCK_NOT_FOUND'],
    ['GetCustomer', () => p.customers.getCustomer({ key: { case: 'id', value: id('cus_') } }), 'CUSTOMER_NOT_FOUND'],
    [
      'CreateCustomer parent_id',
      () =>
        p.customers.createCustomer({
          requestId: p.rid(),
          customer: { externalId: 'long-parent', name: 'Child', parentId: id('cus_') },
        }),
      'CUSTOMER_NOT_FOUND',
    ],
  ])('%s', async (_name, call, expected) => {
    const err = await rpcError(call());
    expect([err.code, reason(err)]).toEqual([Code.NotFound, expected]);
  });
});

describe('times outside the accepted years are refused naming the field', () => {
  test('a start on the last day of 9999 with a trial of 3 days', async () => {
    const err = await rpcError(
      p.subscriptions.createSubscription({
        requestId: p.rid(),
        customerId,
        planKey: 'team',
        startTime: ts('9999-12-31T00:00:00Z'),
        trialDays: 3,
      }),
    );
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['start_time']]);
  });

  test('a test clock in December 9999 or in the first century, and an advance to December 9999', async () => {
    for (const at of ['9999-12-20T00:00:00Z', '0100-12-31T00:00:00Z']) {
      const err = await rpcError(
        p.subscriptions.createTestClock({ requestId: p.rid(), name: 'end', frozenTime: ts(at) }),
      );
      expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['frozen_time']]);
    }
    const { clockId } = await customerOnClock(p, '2026-01-15T00:00:00Z');
    const err = await rpcError(
      p.subscriptions.advanceTestClock({ requestId: p.rid(), id: clockId, frozenTime: ts('9999-12-20T00:00:00Z') }),
    );
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['frozen_time']]);
  });
});

describe('the ends of the accepted times are answered', () => {
  /** A subscription of a customer in `zone` on a fresh test clock at `at`, started there. */
  async function subscribeAt(
    at: string,
    zone: string,
    terms: { planKey: string; trialDays?: number; anchor?: { kind: AnchorKind; dayOfMonth: number } },
  ) {
    const { customerId: onClock } = await customerOnClock(p, at, zone);
    return p.subscriptions.createSubscription({ requestId: p.rid(), customerId: onClock, ...terms });
  }

  test.each(['UTC', 'Pacific/Kiritimati', 'Pacific/Pago_Pago', 'Australia/Sydney'])(
    'the latest start with the longest trial, in %s',
    async (zone) => {
      const res = await subscribeAt('9997-12-31T23:59:59Z', zone, { planKey: 'team', trialDays: 730 });
      expect(iso(res.subscription?.trialEndTime)).toBe('9999-12-31T23:59:59.000Z');
    },
  );

  test.each(['UTC', 'Pacific/Kiritimati', 'Pacific/Pago_Pago', 'Asia/Manila'])(
    'the earliest start, a yearly stub prorated against the year before it, in %s',
    async (zone) => {
      const res = await subscribeAt('0101-01-01T00:00:00Z', zone, {
        planKey: 'yearly',
        anchor: { kind: AnchorKind.DAY_OF_MONTH, dayOfMonth: 31 },
      });
      // A stub to January 31 of 0101 (local time), measured against the year from January 31 of 0100.
      const [stub] = res.prorationItems;
      expect([
        iso(res.subscription?.currentPeriod?.endTime)?.slice(0, 7),
        iso(stub?.fullPeriod?.startTime)?.slice(0, 7),
      ]).toEqual(['0101-01', '0100-01']);
    },
  );
});
