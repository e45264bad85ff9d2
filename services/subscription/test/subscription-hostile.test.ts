// Malformed and hostile input never yields INTERNAL and never changes state: random customers, quantities,
// anchors, trial lengths, overrides, enum numbers and times are sent to the subscription service, and every
// answer is OK or a clean refusal that left the subscription as it was. Reads without the id they need, unknown
// enum values and ids longer than any id are INVALID_ARGUMENT naming the field.

import { outcome, rpcError, teamSpec, violations } from '@billing/test/harness';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { type Platform, startPlatform, ts } from './fixtures.ts';

let p: Platform;
let subscriptionId = '';
let customerId = '';

const CLEAN_REFUSALS = new Set([Code.InvalidArgument, Code.AlreadyExists, Code.FailedPrecondition, Code.NotFound]);

beforeAll(async () => {
  p = await startPlatform({ team: teamSpec() });
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
