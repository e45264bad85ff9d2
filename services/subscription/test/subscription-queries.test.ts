// The rest of SubscriptionService: future starts, add-ons, contract prices, previews, scheduled changes,
// migrations that skip, lists with filters, and what the catalog refuses.

import { BillingTiming, PriceModel } from '@billing/proto/billing/catalog/v1/resources_pb';
import {
  AnchorKind,
  BillTo,
  CancelMode,
  ProrationReason,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { ChangeTiming } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import {
  subscriptionActivated,
  subscriptionPlanChanged,
  subscriptionScheduledChangeCanceled,
} from '@billing/proto/events/subscription';
import { reason, rpcError, teamSpec, violations } from '@billing/test/harness';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { customerOnClock, iso, ormWork, type Platform, planSpec, published, startPlatform, ts } from './fixtures.ts';

let p: Platform;
let seq = 0;

beforeAll(async () => {
  p = await startPlatform({
    team: teamSpec(),
    business: planSpec({ name: 'Business', seat: '25.00' }),
  });
  await p.catalogApi.upsertAddOn({
    requestId: p.rid(),
    addOn: {
      key: 'support',
      name: 'Priority support',
      currencyCodes: ['USD'],
      charges: [
        {
          key: 'support_fee',
          name: 'Support',
          model: PriceModel.FLAT,
          timing: BillingTiming.IN_ADVANCE,
          prices: [{ currencyCode: 'USD', unitAmount: '31.00' }],
        },
      ],
    },
  });
});
afterAll(async () => p.stop());

const onClock = (at: string, zone?: string) => customerOnClock(p, at, zone);

async function subscribe(customerId: string, extra: Record<string, unknown> = {}) {
  const res = await p.subscriptions.createSubscription({
    requestId: p.rid(),
    customerId,
    planKey: 'team',
    quantities: [{ chargeKey: 'seats', quantity: '3' }],
    ...extra,
  });
  return res.subscription?.id ?? '';
}

describe('starts, add-ons and contract prices', () => {
  test('a future start is PENDING, then starts billing at its time with the first billed segment', async () => {
    const { customerId, advance } = await onClock('2026-01-10T00:00:00Z');
    const id = await subscribe(customerId, { startTime: ts('2026-01-15T00:00:00Z') });
    expect((await p.subscriptions.getSubscription({ id })).subscription?.state).toBe(SubscriptionState.PENDING);
    await advance('2026-01-20T00:00:00Z');
    const sub = (await p.subscriptions.getSubscription({ id })).subscription;
    expect(sub?.state).toBe(SubscriptionState.ACTIVE);
    expect([iso(sub?.currentPeriod?.startTime), iso(sub?.currentPeriod?.endTime)]).toEqual([
      '2026-01-15T00:00:00.000Z',
      '2026-02-15T00:00:00.000Z',
    ]);
    const [activated] = await published(p, subscriptionActivated, id);
    expect(activated?.payload.previousState).toBe(SubscriptionState.PENDING);
    expect(activated?.payload.firstBilledSegment?.quantities[0]?.quantity).toBe('3');
    expect(activated?.occurredAt.toISOString()).toBe('2026-01-15T00:00:00.000Z');
  });

  test('a future start on a day-of-month anchor publishes its stub items when it starts', async () => {
    const { customerId, advance } = await onClock('2026-01-10T00:00:00Z');
    const id = await subscribe(customerId, {
      startTime: ts('2026-01-20T00:00:00Z'),
      anchor: { kind: AnchorKind.DAY_OF_MONTH, dayOfMonth: 1 },
    });
    await advance('2026-01-21T00:00:00Z');
    const [activated] = await published(p, subscriptionActivated, id);
    // Jan 20 - Feb 1 is 12 of Jan's 31 days: 15 x 12/31 = 5.806451612903 a seat, 3 seats.
    expect(activated?.payload.prorationItems.map((i) => [ProrationReason[i.reason], i.amount?.amount])).toEqual([
      ['PARTIAL_PERIOD', '17.419354838709'],
    ]);
  });

  test('an add-on attached mid-period is charged for the rest of it, and detached with a credit', async () => {
    const { customerId, advance } = await onClock('2026-01-01T00:00:00Z');
    const id = await subscribe(customerId);
    await advance('2026-01-11T00:00:00Z');
    // 21 of 31 days left: 31 x 21/31 = 21.
    const attach = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: id,
      addons: [{ addonKey: 'support', quantity: '1' }],
    });
    expect(attach.prorationItems.map((i) => [i.addonKey, i.chargeKey, i.amount?.amount])).toEqual([
      ['support', 'support_fee', '21'],
    ]);
    await advance('2026-01-21T00:00:00Z');
    const detach = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: id,
      addons: [{ addonKey: 'support', quantity: '0' }],
    });
    expect(detach.prorationItems.map((i) => i.amount?.amount)).toEqual(['-11']);
    expect(detach.subscription?.addons).toEqual([]);
  });

  test('an add-on the catalog does not have is refused with ADD_ON_NOT_FOUND', async () => {
    const { customerId } = await onClock('2026-01-01T00:00:00Z');
    const id = await subscribe(customerId);
    const unknown = await rpcError(
      p.subscriptions.changeQuantity({
        requestId: p.rid(),
        subscriptionId: id,
        addons: [{ addonKey: 'nope', quantity: '1' }],
      }),
    );
    expect([unknown.code, reason(unknown)]).toEqual([Code.NotFound, 'ADD_ON_NOT_FOUND']);
  });

  test('a contract price replaces the plan price in proration', async () => {
    const { customerId, advance } = await onClock('2026-01-01T00:00:00Z');
    const id = await subscribe(customerId, { priceOverrides: [{ chargeKey: 'seats', unitAmount: '9.30' }] });
    await advance('2026-01-11T00:00:00Z');
    const res = await p.subscriptions.changeQuantity({
      requestId: p.rid(),
      subscriptionId: id,
      quantities: [{ chargeKey: 'seats', quantity: '4' }],
    });
    // 9.30 x 21/31 = 6.3 for the added seat.
    expect(res.prorationItems.map((i) => [i.unitAmount, i.amount?.amount])).toEqual([['9.30', '6.3']]);
  });

  test('a contract price for a charge the plan does not have is CHARGE_NOT_FOUND naming it', async () => {
    const { customerId } = await onClock('2026-01-01T00:00:00Z');
    const bad = await rpcError(
      p.subscriptions.createSubscription({
        requestId: p.rid(),
        customerId,
        planKey: 'team',
        priceOverrides: [{ chargeKey: 'nope', unitAmount: 'x' }],
      }),
    );
    expect([bad.code, reason(bad)]).toEqual([Code.NotFound, 'CHARGE_NOT_FOUND']);
    expect(bad.rawMessage).toMatch(
      /^price_overrides\[0\]\.charge_key: version \d+ of plan "team" has no charge "nope"$/,
    );
  });
});

describe('what the catalog and the service do not have', () => {
  test('a plan the catalog does not have is PLAN_NOT_FOUND', async () => {
    const { customerId } = await onClock('2026-01-01T00:00:00Z');
    const plan = await rpcError(
      p.subscriptions.createSubscription({ requestId: p.rid(), customerId, planKey: 'nope' }),
    );
    expect([plan.code, reason(plan)]).toEqual([Code.NotFound, 'PLAN_NOT_FOUND']);
  });

  test('a version the plan does not have is PLAN_VERSION_NOT_FOUND', async () => {
    const { customerId } = await onClock('2026-01-01T00:00:00Z');
    const version = await rpcError(
      p.subscriptions.createSubscription({ requestId: p.rid(), customerId, planKey: 'team', planVersion: 9 }),
    );
    expect([version.code, reason(version)]).toEqual([Code.NotFound, 'PLAN_VERSION_NOT_FOUND']);
  });

  test('a customer the service does not have is CUSTOMER_NOT_FOUND', async () => {
    const customer = await rpcError(
      p.subscriptions.createSubscription({ requestId: p.rid(), customerId: 'cus_nope', planKey: 'team' }),
    );
    expect([customer.code, reason(customer)]).toEqual([Code.NotFound, 'CUSTOMER_NOT_FOUND']);
  });
});

describe('previews and scheduled changes', () => {
  /** Expects the subscription to be as it was subscribed: team, 3 seats, no proration items. */
  async function unchanged(id: string) {
    expect((await p.subscriptions.getSubscription({ id })).subscription).toMatchObject({
      planKey: 'team',
      quantities: [{ quantity: '3' }],
    });
    expect((await p.subscriptions.listProrationItems({ subscriptionId: id })).prorationItems).toEqual([]);
  }

  test('a preview of a plan change gives the items it would create, without ids and without changing anything', async () => {
    const { customerId, advance } = await onClock('2026-01-15T00:00:00Z');
    const id = await subscribe(customerId);
    await advance('2026-02-01T00:00:00Z');
    const preview = await p.subscriptions.previewChange({ subscriptionId: id, planKey: 'business' });
    expect(preview.prorationItems.map((i) => [i.id, i.amount?.amount])).toEqual([
      ['', '-20.322580645161'],
      ['', '33.870967741935'],
    ]);
    await unchanged(id);
  });

  test('a preview of a seat change gives the items it would create, without changing anything', async () => {
    const { customerId, advance } = await onClock('2026-01-15T00:00:00Z');
    const id = await subscribe(customerId);
    await advance('2026-02-01T00:00:00Z');
    const seats = await p.subscriptions.previewChange({
      subscriptionId: id,
      quantities: [{ chargeKey: 'seats', quantity: '5' }],
    });
    expect(seats.prorationItems.map((i) => i.amount?.amount)).toEqual(['13.548387096774']);
    await unchanged(id);
  });

  test('a preview at a time outside the current period is refused naming effective_time', async () => {
    const { customerId, advance } = await onClock('2026-01-15T00:00:00Z');
    const id = await subscribe(customerId);
    await advance('2026-02-01T00:00:00Z');
    const outside = await rpcError(
      p.subscriptions.previewChange({
        subscriptionId: id,
        planKey: 'business',
        effectiveTime: ts('2026-03-01T00:00:00Z'),
      }),
    );
    expect([outside.code, violations(outside)]).toEqual([Code.InvalidArgument, ['effective_time']]);
  });

  /** A subscription on version 1 of the team plan, with a change to `business` scheduled for its period end. */
  async function withScheduledChange() {
    const { customerId } = await onClock('2026-01-15T00:00:00Z');
    const id = await subscribe(customerId, { planVersion: 1 });
    await p.subscriptions.changePlan({
      requestId: p.rid(),
      subscriptionId: id,
      planKey: 'business',
      timing: ChangeTiming.PERIOD_END,
    });
    return { customerId, id };
  }

  /** Publishes a new version of the team plan, so that version 1 can be migrated. */
  async function publishTeamVersion() {
    await p.catalogApi.updatePlanDraft({
      requestId: p.rid(),
      planKey: 'team',
      spec: planSpec({ name: 'Team', seat: '16.00' }),
    });
    await p.catalogApi.publishPlan({ requestId: p.rid(), planKey: 'team' });
  }

  const dryRun = () =>
    p.subscriptions.migrateSubscriptions({ requestId: p.rid(), planKey: 'team', fromVersion: 1, dryRun: true });

  test('subscriptions with a scheduled change are listed as such, and a migration skips them', async () => {
    const { customerId, id } = await withScheduledChange();
    const listed = await p.subscriptions.listSubscriptions({ customerId, scheduledChangeOnly: true });
    expect(listed.subscriptions.map((s) => s.id)).toEqual([id]);
    await publishTeamVersion();
    const dry = await dryRun();
    expect(dry.subscriptionIds).not.toContain(id);
    expect(dry.skippedCount).toBeGreaterThanOrEqual(1);
  });

  test('a scheduled change can be dropped, and a migration then includes the subscription', async () => {
    const { id } = await withScheduledChange();
    const dropped = await p.subscriptions.cancelScheduledChange({ requestId: p.rid(), subscriptionId: id });
    expect(dropped.subscription?.scheduledChange).toBeUndefined();
    const [event] = await published(p, subscriptionScheduledChangeCanceled, id);
    expect(event?.payload.canceledChange?.planKey).toBe('business');
    await publishTeamVersion();
    expect((await dryRun()).subscriptionIds).toContain(id);
  });

  test('dropping a scheduled change when there is none is refused with NO_SCHEDULED_CHANGE', async () => {
    const { id } = await withScheduledChange();
    await p.subscriptions.cancelScheduledChange({ requestId: p.rid(), subscriptionId: id });
    const none = await rpcError(p.subscriptions.cancelScheduledChange({ requestId: p.rid(), subscriptionId: id }));
    expect([none.code, reason(none)]).toEqual([Code.FailedPrecondition, 'NO_SCHEDULED_CHANGE']);
  });
});

describe('migrations and resumes at the edges', () => {
  test('a pending subscription is migrated too, and moves when it starts', async () => {
    const { customerId, advance } = await onClock('2026-01-10T00:00:00Z');
    const id = await subscribe(customerId, { startTime: ts('2026-01-20T00:00:00Z'), planVersion: 1 });
    const latest = (await p.catalogApi.getPlan({ planKey: 'team' })).plan?.latestVersion ?? 0;
    const done = await p.subscriptions.migrateSubscriptions({ requestId: p.rid(), planKey: 'team', fromVersion: 1 });
    expect(done.subscriptionIds).toContain(id);
    await advance('2026-01-21T00:00:00Z');
    const sub = (await p.subscriptions.getSubscription({ id })).subscription;
    expect([sub?.state, sub?.planVersion]).toEqual([SubscriptionState.ACTIVE, latest]);
    const [changed] = await published(p, subscriptionPlanChanged, id);
    expect(changed?.payload).toMatchObject({ previousPlanVersion: 1, immediate: false });
  });

  test('a migration to a draft version is refused', async () => {
    const draft = await p.catalogApi.updatePlanDraft({
      requestId: p.rid(),
      planKey: 'team',
      spec: planSpec({ name: 'Team', seat: '99.00' }),
    });
    const err = await rpcError(
      p.subscriptions.migrateSubscriptions({
        requestId: p.rid(),
        planKey: 'team',
        fromVersion: 1,
        toVersion: draft.draft?.version ?? 0,
      }),
    );
    expect([err.code, reason(err)]).toEqual([Code.NotFound, 'PLAN_VERSION_NOT_FOUND']);
  });

  test('a cancellation that has taken effect cannot be resumed, even before the clock processes it', async () => {
    p.clock.set(new Date('2026-01-15T00:00:00Z'));
    const customer = (
      await p.customers.createCustomer({
        requestId: p.rid(),
        customer: { externalId: `q-${seq++}`, name: 'Real time', billing: { currencyCode: 'USD' } },
      })
    ).customer;
    const id = await subscribe(customer?.id ?? '', { planVersion: 1 });
    await p.subscriptions.cancelSubscription({ requestId: p.rid(), subscriptionId: id, mode: CancelMode.PERIOD_END });
    p.clock.set(new Date('2026-02-15T00:00:05Z'));
    const err = await rpcError(p.subscriptions.resumeSubscription({ requestId: p.rid(), subscriptionId: id }));
    expect([err.code, reason(err)]).toEqual([Code.FailedPrecondition, 'INVALID_TRANSITION']);
  });
});

describe('lists', () => {
  test('subscriptions list by customer, payer, plan and state, and page', async () => {
    const parent = await onClock('2026-01-15T00:00:00Z');
    const child = (
      await p.customers.createCustomer({
        requestId: p.rid(),
        customer: {
          externalId: `q-${seq++}`,
          name: 'Child',
          parentId: parent.customerId,
          billTo: BillTo.PARENT,
          testClockId: parent.clockId,
        },
      })
    ).customer;
    const own = await subscribe(parent.customerId);
    const childs = await subscribe(child?.id ?? '', { currencyCode: 'USD' });
    const ended = await subscribe(child?.id ?? '');
    await p.subscriptions.cancelSubscription({
      requestId: p.rid(),
      subscriptionId: ended,
      mode: CancelMode.IMMEDIATELY_WITHOUT_CREDIT,
    });

    const byPayer = await p.subscriptions.listSubscriptions({ payerId: parent.customerId });
    expect(byPayer.subscriptions.map((s) => s.id)).toEqual([own, childs, ended]);
    expect(byPayer.subscriptions.map((s) => s.payerId)).toEqual([
      parent.customerId,
      parent.customerId,
      parent.customerId,
    ]);
    const live = await p.subscriptions.listSubscriptions({ customerId: child?.id, states: [SubscriptionState.ACTIVE] });
    expect(live.subscriptions.map((s) => s.id)).toEqual([childs]);
    const first = await p.subscriptions.listSubscriptions({ payerId: parent.customerId, pageSize: 2 });
    const rest = await p.subscriptions.listSubscriptions({
      payerId: parent.customerId,
      pageSize: 2,
      pageToken: first.nextPageToken,
    });
    expect([...first.subscriptions, ...rest.subscriptions].map((s) => s.id)).toEqual([own, childs, ended]);
    expect(rest.nextPageToken).toBe('');
    const items = await p.subscriptions.listProrationItems({ subscriptionId: own });
    expect(items.prorationItems).toEqual([]);
  });

  test('a payer of several customers lists theirs, page by page, without reading its customers', async () => {
    const payer = await onClock('2026-01-15T00:00:00Z');
    /** A customer under `parentId` on the payer's clock, billing to its parent or to itself. */
    const child = async (parentId: string, billTo: BillTo) =>
      (
        await p.customers.createCustomer({
          requestId: p.rid(),
          customer: { externalId: `q-${seq++}`, name: 'Child', parentId, billTo, testClockId: payer.clockId },
        })
      ).customer?.id ?? '';
    const team = await child(payer.customerId, BillTo.PARENT);
    const pod = await child(team, BillTo.PARENT);
    const own = await child(payer.customerId, BillTo.SELF);
    const others = await Promise.all(Array.from({ length: 8 }, () => child(own, BillTo.PARENT)));
    const paid = [
      await subscribe(payer.customerId),
      await subscribe(team, { currencyCode: 'USD' }),
      await subscribe(pod, { currencyCode: 'USD' }),
    ];
    // Paid for by `own`, which pays for itself and its children.
    await subscribe(own, { currencyCode: 'USD' });
    for (const other of others) await subscribe(other, { currencyCode: 'USD' });

    const pages: string[][] = [];
    let pageToken = '';
    const work = await ormWork(async () => {
      do {
        const page = await p.subscriptions.listSubscriptions({ payerId: payer.customerId, pageSize: 2, pageToken });
        pages.push(page.subscriptions.map((s) => s.id));
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
    });
    expect(pages).toEqual([paid.slice(0, 2), paid.slice(2)]);
    // Each page reads at most its size and one more subscription (to know whether another page follows), and no
    // customer.
    expect(work.loaded).toBe(3 + 1);
  });

  test('a payer that pays for nobody lists no subscriptions', async () => {
    const none = await p.subscriptions.listSubscriptions({ payerId: 'cus_nobody' });
    expect([none.subscriptions, none.nextPageToken]).toEqual([[], '']);
  });
});
