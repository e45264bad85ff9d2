// The acceptance scenarios of subscriptions (S1-S6, S12) over real gRPC, each customer on its own test clock, with
// every amount worked out by hand and every event read back from the outbox.

import {
  CancelMode,
  EndReason,
  ProrationBilling,
  ProrationReason,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { ChangeTiming } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import {
  subscriptionActivated,
  subscriptionCanceled,
  subscriptionChangeScheduled,
  subscriptionCreated,
  subscriptionEnded,
  subscriptionPeriodClosed,
  subscriptionPlanChanged,
  subscriptionQuantityChanged,
  subscriptionRenewed,
  subscriptionTrialEnding,
} from '@billing/proto/events/subscription';
import { reason, rpcError, teamSpec, violations } from '@billing/test/harness';
import type { timestampDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { customerOnClock, iso, type Platform, planSpec, published, startPlatform } from './fixtures.ts';

let p: Platform;

beforeAll(async () => {
  p = await startPlatform({
    team: teamSpec(),
    business: planSpec({ name: 'Business', seat: '25.00', flat: '100.00' }),
    trial: planSpec({ name: 'Trial team', seat: '15.00', trialDays: 14 }),
    yearly: planSpec({ name: 'Yearly', seat: '150.00', interval: 3 }),
  });
});
afterAll(async () => p.stop());

const period = (
  x: { startTime?: Parameters<typeof timestampDate>[0]; endTime?: Parameters<typeof timestampDate>[0] } | undefined,
) => [iso(x?.startTime), iso(x?.endTime)];

/** A customer on a fresh test clock at `at`, in `zone`. */
const onClock = (at: string, zone?: string) => customerOnClock(p, at, zone);

async function subscribe(customerId: string, planKey: string, seats = '3', extra: Record<string, unknown> = {}) {
  const res = await p.subscriptions.createSubscription({
    requestId: p.rid(),
    customerId,
    planKey,
    quantities: [{ chargeKey: 'seats', quantity: seats }],
    ...extra,
  });
  if (!res.subscription) throw new Error('no subscription');
  return res;
}

const amounts = (items: { amount?: { amount: string }; billing: ProrationBilling; chargeKey: string }[]) =>
  items.map((i) => [i.chargeKey, i.amount?.amount, ProrationBilling[i.billing]]);

describe('S1 seats, billed in advance, renewed on the anniversary', () => {
  test('a subscription starts ACTIVE for Jan 15 - Feb 15 and closes and renews exactly at Feb 15', async () => {
    const { customer, advance } = await onClock('2026-01-15T10:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    expect(sub).toMatchObject({
      state: SubscriptionState.ACTIVE,
      periodNumber: 1,
      currencyCode: 'USD',
      customerExternalId: customer.externalId,
    });
    expect(period(sub?.currentPeriod)).toEqual(['2026-01-15T10:00:00.000Z', '2026-02-15T10:00:00.000Z']);
    const [created] = await published(p, subscriptionCreated, sub?.id);
    expect(created?.payload.firstBilledSegment?.quantities).toEqual([
      expect.objectContaining({ chargeKey: 'seats', quantity: '3' }),
    ]);
    expect(created?.occurredAt.toISOString()).toBe('2026-01-15T10:00:00.000Z');

    await advance('2026-02-15T09:59:59Z');
    expect(await published(p, subscriptionPeriodClosed, sub?.id)).toEqual([]);
    await advance('2026-02-15T10:00:00Z');
    const [closed] = await published(p, subscriptionPeriodClosed, sub?.id);
    expect(closed?.occurredAt.toISOString()).toBe('2026-02-15T10:00:00.000Z');
    expect(closed?.payload).toMatchObject({ periodNumber: 1, timeZone: 'UTC' });
    expect(period(closed?.payload.closedPeriod)).toEqual(['2026-01-15T10:00:00.000Z', '2026-02-15T10:00:00.000Z']);
    expect(period(closed?.payload.nextSegment?.period)).toEqual([
      '2026-02-15T10:00:00.000Z',
      '2026-03-15T10:00:00.000Z',
    ]);
    expect(closed?.payload.subscription?.periodNumber).toBe(2);
    expect((await published(p, subscriptionRenewed, sub?.id)).length).toBe(1);
  });
});

describe('S2 upgrade with proration', () => {
  test('on Feb 1 team -> business credits unused team time and charges business, to the millisecond', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    await advance('2026-02-01T00:00:00Z');
    const res = await p.subscriptions.changePlan({
      requestId: p.rid(),
      subscriptionId: sub?.id ?? '',
      planKey: 'business',
      timing: ChangeTiming.IMMEDIATELY,
    });
    // 14 of 31 days left. Team: 15 x 17/31 accrued = 8.225806451613, rest 6.774193548387 x 3 = 20.322580645161.
    // Business seats: 25 x 17/31 = 13.709677419355, rest 11.290322580645 x 3 = 33.870967741935.
    // Business platform fee: 100 x 17/31 = 54.838709677419, rest 45.161290322581.
    expect(amounts(res.prorationItems)).toEqual([
      ['seats', '-20.322580645161', 'INVOICE_NOW'],
      ['seats', '33.870967741935', 'INVOICE_NOW'],
      ['platform', '45.161290322581', 'INVOICE_NOW'],
    ]);
    expect(res.prorationItems.every((i) => i.reason === ProrationReason.PLAN_CHANGE)).toBe(true);
    expect(res.subscription).toMatchObject({ planKey: 'business', planVersion: 1 });
    const [changed] = await published(p, subscriptionPlanChanged, sub?.id);
    expect(changed?.payload).toMatchObject({ previousPlanKey: 'team', immediate: true });
    expect(changed?.payload.prorationItems.map((i) => i.id)).toEqual(res.prorationItems.map((i) => i.id));

    await advance('2026-02-15T00:00:00Z');
    const [closed] = await published(p, subscriptionPeriodClosed, sub?.id);
    expect(closed?.payload.segments.map((s) => [s.planKey, ...period(s.period)])).toEqual([
      ['team', '2026-01-15T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
      ['business', '2026-02-01T00:00:00.000Z', '2026-02-15T00:00:00.000Z'],
    ]);
    expect(closed?.payload.nextSegment?.planKey).toBe('business');
  });

  test('a change to another interval takes effect at the period end only', async () => {
    const { customer } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    const err = await rpcError(
      p.subscriptions.changePlan({
        requestId: p.rid(),
        subscriptionId: sub?.id ?? '',
        planKey: 'yearly',
        timing: ChangeTiming.IMMEDIATELY,
      }),
    );
    expect([err.code, reason(err)]).toEqual([Code.FailedPrecondition, 'INTERVAL_CHANGE_AT_PERIOD_END']);
  });
});

describe('S3 seat changes', () => {
  test('+2 seats are charged now, -2 seats credited on the next invoice, and the close carries the credit', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    await advance('2026-02-01T00:00:00Z');
    const up = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: sub?.id ?? '',
      quantities: [{ chargeKey: 'seats', quantity: '5' }],
    });
    // 2 seats x 6.774193548387 (the rest of one seat, see S2).
    expect(amounts(up.prorationItems)).toEqual([['seats', '13.548387096774', 'INVOICE_NOW']]);

    await advance('2026-02-08T00:00:00Z');
    const down = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: sub?.id ?? '',
      quantities: [{ chargeKey: 'seats', quantity: '3' }],
    });
    // 7 of 31 days left: 15 x 24/31 = 11.612903225806 accrued, rest 3.387096774194, x2.
    expect(amounts(down.prorationItems)).toEqual([['seats', '-6.774193548388', 'NEXT_INVOICE']]);

    await advance('2026-02-15T00:00:00Z');
    const [closed] = await published(p, subscriptionPeriodClosed, sub?.id);
    expect(closed?.payload.prorationItems.map((i) => i.id)).toEqual(down.prorationItems.map((i) => i.id));
    expect(closed?.payload.segments.map((s) => s.quantities[0]?.quantity)).toEqual(['3', '5', '3']);
  });

  test('a retried seat change returns the first answer and changes nothing twice', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    await advance('2026-02-01T00:00:00Z');
    const change = {
      requestId: p.rid(),
      subscriptionId: sub?.id ?? '',
      quantities: [{ chargeKey: 'seats', quantity: '5' }],
    };
    const up = await p.subscriptions.changeQuantity(change);
    const retried = await p.subscriptions.changeQuantity(change);
    expect(retried.prorationItems.map((i) => i.id)).toEqual(up.prorationItems.map((i) => i.id));
    expect((await published(p, subscriptionQuantityChanged, sub?.id)).length).toBe(1);
  });

  test('bad quantities are refused with their fields and change nothing', async () => {
    const { customer } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    const err = await rpcError(
      p.subscriptions.changeQuantity({
        requestId: p.rid(),
        subscriptionId: sub?.id ?? '',
        quantities: [
          { chargeKey: 'seats', quantity: '-1' },
          { chargeKey: 'build_minutes', quantity: '2' },
        ],
      }),
    );
    expect([err.code, violations(err)]).toEqual([
      Code.InvalidArgument,
      ['quantities[0].quantity', 'quantities[1].charge_key'],
    ]);
    const after = await p.subscriptions.getSubscription({ id: sub?.id ?? '' });
    expect(after.subscription?.quantities[0]?.quantity).toBe('3');
  });
});

describe('S4 downgrade at the period end', () => {
  test('nothing changes until the boundary; then plan and price change together with the renewal', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'business');
    const res = await p.subscriptions.changePlan({
      requestId: p.rid(),
      subscriptionId: sub?.id ?? '',
      planKey: 'team',
      timing: ChangeTiming.PERIOD_END,
    });
    expect(res.prorationItems).toEqual([]);
    expect(res.subscription).toMatchObject({
      planKey: 'business',
      scheduledChange: { planKey: 'team', planVersion: 1 },
    });
    expect(iso(res.subscription?.scheduledChange?.applyTime)).toBe('2026-02-15T00:00:00.000Z');
    expect((await published(p, subscriptionChangeScheduled, sub?.id)).length).toBe(1);

    await advance('2026-02-14T23:59:59Z');
    expect((await p.subscriptions.getSubscription({ id: sub?.id ?? '' })).subscription?.planKey).toBe('business');
    await advance('2026-02-15T00:00:00Z');
    const after = (await p.subscriptions.getSubscription({ id: sub?.id ?? '' })).subscription;
    expect(after).toMatchObject({ planKey: 'team', periodNumber: 2 });
    expect(after?.scheduledChange).toBeUndefined();
    const [closed] = await published(p, subscriptionPeriodClosed, sub?.id);
    expect(closed?.payload.segments.map((s) => s.planKey)).toEqual(['business']);
    expect(closed?.payload.nextSegment?.planKey).toBe('team');
    const [changed] = await published(p, subscriptionPlanChanged, sub?.id);
    expect(changed?.payload).toMatchObject({ previousPlanKey: 'business', immediate: false, prorationItems: [] });
    expect(changed?.occurredAt.toISOString()).toBe('2026-02-15T00:00:00.000Z');
  });
});

describe('S5 cancel', () => {
  /** Cancels a subscription at its period end. */
  const cancelAtPeriodEnd = (id: string) =>
    p.subscriptions.cancelSubscription({ requestId: p.rid(), subscriptionId: id, mode: CancelMode.PERIOD_END });

  test('a cancellation at the period end can be resumed before it', async () => {
    const { customer } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    const id = sub?.id ?? '';
    const canceled = await cancelAtPeriodEnd(id);
    expect(canceled.subscription?.state).toBe(SubscriptionState.CANCELED);
    expect(iso(canceled.subscription?.cancelTime)).toBe('2026-02-15T00:00:00.000Z');
    const resumed = await p.subscriptions.resumeSubscription({ requestId: p.rid(), subscriptionId: id });
    expect(resumed.subscription?.state).toBe(SubscriptionState.ACTIVE);
    expect(resumed.subscription?.cancelTime).toBeUndefined();
  });

  test('a subscription that is not canceled cannot be resumed', async () => {
    const { customer } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    const again = await rpcError(
      p.subscriptions.resumeSubscription({ requestId: p.rid(), subscriptionId: sub?.id ?? '' }),
    );
    expect([again.code, reason(again)]).toEqual([Code.FailedPrecondition, 'INVALID_TRANSITION']);
  });

  test('a cancellation at the period end ends the subscription there', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    const id = sub?.id ?? '';
    await cancelAtPeriodEnd(id);
    await advance('2026-03-01T00:00:00Z');
    const ended = (await p.subscriptions.getSubscription({ id })).subscription;
    expect(ended).toMatchObject({
      state: SubscriptionState.ENDED,
      endReason: EndReason.CANCELED_AT_PERIOD_END,
      periodNumber: 1,
    });
    expect(iso(ended?.endTime)).toBe('2026-02-15T00:00:00.000Z');
    const [closed] = await published(p, subscriptionPeriodClosed, id);
    expect(closed?.payload.nextSegment).toBeUndefined();
    expect((await published(p, subscriptionEnded, id)).map((e) => e.occurredAt.toISOString())).toEqual([
      '2026-02-15T00:00:00.000Z',
    ]);
  });

  test('an ended subscription cannot be canceled', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    const id = sub?.id ?? '';
    await cancelAtPeriodEnd(id);
    await advance('2026-03-01T00:00:00Z');
    const late = await rpcError(
      p.subscriptions.cancelSubscription({
        requestId: p.rid(),
        subscriptionId: id,
        mode: CancelMode.IMMEDIATELY_WITHOUT_CREDIT,
      }),
    );
    expect(reason(late)).toBe('INVALID_TRANSITION');
  });

  test('an immediate cancellation with credit credits the unused time and closes the period early', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'team');
    const id = sub?.id ?? '';
    await advance('2026-02-01T00:00:00Z');
    const res = await p.subscriptions.cancelSubscription({
      requestId: p.rid(),
      subscriptionId: id,
      mode: CancelMode.IMMEDIATELY_WITH_CREDIT,
      reason: 'moving on',
    });
    expect(res.subscription).toMatchObject({
      state: SubscriptionState.ENDED,
      endReason: EndReason.CANCELED_IMMEDIATELY,
    });
    expect(amounts(res.prorationItems)).toEqual([['seats', '-20.322580645161', 'NEXT_INVOICE']]);
    const [canceled] = await published(p, subscriptionCanceled, id);
    expect(canceled?.payload).toMatchObject({ mode: CancelMode.IMMEDIATELY_WITH_CREDIT, reason: 'moving on' });
    const [closed] = await published(p, subscriptionPeriodClosed, id);
    expect(period(closed?.payload.closedPeriod)).toEqual(['2026-01-15T00:00:00.000Z', '2026-02-01T00:00:00.000Z']);
    expect(closed?.payload.prorationItems.map((i) => i.id)).toEqual(res.prorationItems.map((i) => i.id));
    expect((await published(p, subscriptionEnded, id)).length).toBe(1);
  });
});

describe('S6 trial', () => {
  test('14 free days, a reminder 3 days before the end, then the first billed period from the trial end', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'trial', '2');
    const id = sub?.id ?? '';
    expect(sub?.state).toBe(SubscriptionState.TRIALING);
    expect(period(sub?.currentPeriod)).toEqual(['2026-01-15T00:00:00.000Z', '2026-01-29T00:00:00.000Z']);
    const [created] = await published(p, subscriptionCreated, id);
    expect(created?.payload.firstBilledSegment).toBeUndefined();

    await advance('2026-01-26T00:00:00Z');
    expect((await published(p, subscriptionTrialEnding, id)).map((e) => e.occurredAt.toISOString())).toEqual([
      '2026-01-26T00:00:00.000Z',
    ]);
    await advance('2026-01-29T00:00:00Z');
    const after = (await p.subscriptions.getSubscription({ id })).subscription;
    expect(after).toMatchObject({ state: SubscriptionState.ACTIVE, periodNumber: 2 });
    expect(period(after?.currentPeriod)).toEqual(['2026-01-29T00:00:00.000Z', '2026-02-28T00:00:00.000Z']);
    const [closed] = await published(p, subscriptionPeriodClosed, id);
    expect(closed?.payload.segments.map((s) => s.trial)).toEqual([true]);
    expect(closed?.payload.nextSegment?.trial).toBe(false);
    const [activated] = await published(p, subscriptionActivated, id);
    expect(activated?.payload.previousState).toBe(SubscriptionState.TRIALING);
  });

  test('a trial canceled at its end stays unbilled: no credit for it, no charge for seats added in it', async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'trial', '2');
    const id = sub?.id ?? '';
    await advance('2026-01-17T00:00:00Z');
    await p.subscriptions.cancelSubscription({ requestId: p.rid(), subscriptionId: id, mode: CancelMode.PERIOD_END });
    await advance('2026-01-19T00:00:00Z');
    const more = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: id,
      quantities: [{ chargeKey: 'seats', quantity: '4' }],
    });
    expect(more.prorationItems).toEqual([]);
    await advance('2026-01-20T00:00:00Z');
    const ended = await p.subscriptions.cancelSubscription({
      requestId: p.rid(),
      subscriptionId: id,
      mode: CancelMode.IMMEDIATELY_WITH_CREDIT,
    });
    expect(ended.prorationItems).toEqual([]);
    const [closed] = await published(p, subscriptionPeriodClosed, id);
    expect(closed?.payload.segments.map((s) => [s.trial, s.quantities[0]?.quantity])).toEqual([
      [true, '2'],
      [true, '4'],
    ]);
  });

  test('a trial override of 0 days starts billing at once', async () => {
    const { customer } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: sub } = await subscribe(customer.id, 'trial', '1', { trialDays: 0 });
    expect(sub?.state).toBe(SubscriptionState.ACTIVE);
  });
});

describe('S12 plan versions', () => {
  /** A subscriber of team v1 on a fresh test clock at Jan 15, with team v2 published after it subscribed. */
  let old: Awaited<ReturnType<typeof subscribe>>['subscription'];
  let advanceOld: (to: string) => Promise<unknown>;

  beforeAll(async () => {
    const { customer, advance } = await onClock('2026-01-15T00:00:00Z');
    old = (await subscribe(customer.id, 'team')).subscription;
    advanceOld = advance;
    await p.catalogApi.updatePlanDraft({
      requestId: p.rid(),
      planKey: 'team',
      spec: planSpec({ name: 'Team', seat: '18.00' }),
    });
    await p.catalogApi.publishPlan({ requestId: p.rid(), planKey: 'team' });
  });

  test('v2 is for new subscribers', async () => {
    const { customer: other } = await onClock('2026-01-15T00:00:00Z');
    const { subscription: fresh } = await subscribe(other.id, 'team');
    expect(fresh?.planVersion).toBe(2);
  });

  test('a dry run lists v1 subscribers and moves none; the migration then moves them at their next renewal', async () => {
    const dry = await p.subscriptions.migrateSubscriptions({
      requestId: p.rid(),
      planKey: 'team',
      fromVersion: 1,
      dryRun: true,
    });
    expect(dry).toMatchObject({ toVersion: 2, dryRun: true });
    expect(dry.subscriptionIds).toContain(old?.id);
    expect(
      (await p.subscriptions.getSubscription({ id: old?.id ?? '' })).subscription?.scheduledChange,
    ).toBeUndefined();

    const done = await p.subscriptions.migrateSubscriptions({ requestId: p.rid(), planKey: 'team', fromVersion: 1 });
    expect(done.migratedCount).toBe(dry.migratedCount);
    await advanceOld('2026-02-15T00:00:00Z');
    const moved = (await p.subscriptions.getSubscription({ id: old?.id ?? '' })).subscription;
    expect(moved?.planVersion).toBe(2);
    expect(moved?.scheduledChange).toBeUndefined();
  });
});
