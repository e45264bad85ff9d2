// Use cases that read and save many rows in one transaction (a migration, a test clock's advance, a payment
// outcome for many subscriptions, a tree move) do the same work per row however many rows the transaction has
// seen: the ORM's work while one runs over twice the rows is at most twice its work over the rows, where a flush
// per saved row, comparing every entity loaded before it, made it grow with the square of the rows.
import { BillTo, SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionChangeScheduled, subscriptionPastDue } from '@billing/proto/events/subscription';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { markPastDue } from '../src/service/mark-past-due.ts';
import {
  customerOnClock,
  type OrmWork,
  ormWork,
  type Platform,
  planSpec,
  published,
  startPlatform,
} from './fixtures.ts';

let p: Platform;
let seq = 0;

beforeAll(async () => {
  p = await startPlatform({
    fifteen: planSpec({ name: 'Fifteen', seat: '10.00' }),
    thirty: planSpec({ name: 'Thirty', seat: '10.00' }),
    team: planSpec({ name: 'Team', seat: '10.00' }),
  });
});
afterAll(async () => p.stop());

/** The ORM's work of `run` over `size` rows, and over twice as many. */
async function onceAndTwice(size: number, run: (size: number) => Promise<OrmWork>) {
  const once = await run(size);
  return { once, twice: await run(2 * size) };
}

/** All of the ORM's work, loads and comparisons alike. */
const total = (work: OrmWork) => work.loaded + work.compared;

/** A real-time USD customer. */
async function customer(): Promise<string> {
  const res = await p.customers.createCustomer({
    requestId: p.rid(),
    customer: { externalId: `bulk-${seq++}`, name: 'Bulk', billing: { currencyCode: 'USD' } },
  });
  return res.customer?.id ?? '';
}

/** `count` subscriptions of one customer to `planKey`; returns their ids. */
async function subscriptions(customerId: string, planKey: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await p.subscriptions.createSubscription({ requestId: p.rid(), customerId, planKey });
    ids.push(res.subscription?.id ?? '');
  }
  return ids;
}

describe('the work per row does not grow with the rows', () => {
  test('migrating twice as many subscriptions costs at most twice as much', async () => {
    const plans: Record<number, string> = { 15: 'fifteen', 30: 'thirty' };
    const { once, twice } = await onceAndTwice(15, async (count) => {
      const planKey = plans[count] ?? '';
      const ids = await subscriptions(await customer(), planKey, count);
      await p.catalogApi.updatePlanDraft({
        requestId: p.rid(),
        planKey,
        spec: planSpec({ name: planKey, seat: '12.00' }),
      });
      await p.catalogApi.publishPlan({ requestId: p.rid(), planKey });
      const work = await ormWork(async () => {
        const done = await p.subscriptions.migrateSubscriptions({ requestId: p.rid(), planKey, fromVersion: 1 });
        expect(done.migratedCount).toBe(count);
      });
      const scheduled = await Promise.all(ids.map((id) => published(p, subscriptionChangeScheduled, id)));
      expect(
        scheduled.map((events) => events.map((e) => e.payload.subscription?.scheduledChange?.planVersion)),
      ).toEqual(ids.map(() => [2]));
      return work;
    });
    expect(total(twice)).toBeLessThanOrEqual(2 * total(once));
  });

  test('advancing a test clock twice as far costs at most twice as much', async () => {
    const { once, twice } = await onceAndTwice(6, async (months) => {
      const clocked = await customerOnClock(p, '2026-01-15T00:00:00Z');
      const ids = await subscriptions(clocked.customerId, 'team', 3);
      const until = months === 6 ? '2026-07-15T00:00:00Z' : '2027-01-15T00:00:00Z';
      const work = await ormWork(() => clocked.advance(until));
      // Monthly renewals: each subscription renews once a month, into period `months + 1`.
      const renewed = await Promise.all(
        ids.map(async (id) => (await p.subscriptions.getSubscription({ id })).subscription),
      );
      expect(renewed.map((s) => s?.periodNumber)).toEqual(ids.map(() => months + 1));
      return work;
    });
    expect(total(twice)).toBeLessThanOrEqual(2 * total(once));
  });

  test('a failed payment of twice as many subscriptions costs at most twice as much', async () => {
    const { once, twice } = await onceAndTwice(15, async (count) => {
      const ids = await subscriptions(await customer(), 'team', count);
      const ctx = { now: new Date('2026-01-20T00:00:00Z'), requestId: `failed-${count}` };
      const work = await ormWork(() =>
        p.service.context.db.transaction((em) =>
          markPastDue({ ...ctx, em }, { subscriptionIds: ids, invoiceId: `inv-${count}`, graceEndTime: undefined }),
        ),
      );
      const states = await Promise.all(
        ids.map(async (id) => (await p.subscriptions.getSubscription({ id })).subscription),
      );
      expect(states.map((s) => s?.state)).toEqual(ids.map(() => SubscriptionState.PAST_DUE));
      const notices = await Promise.all(ids.map((id) => published(p, subscriptionPastDue, id)));
      expect(notices.map((events) => events.length)).toEqual(ids.map(() => 1));
      return work;
    });
    expect(total(twice)).toBeLessThanOrEqual(2 * total(once));
  });

  test('moving a customer with twice as many descendants costs at most twice as much, and loads none of them', async () => {
    const { once, twice } = await onceAndTwice(10, async (count) => {
      const root = await customer();
      const children: string[] = [];
      for (let i = 0; i < count; i++) {
        const res = await p.customers.createCustomer({
          requestId: p.rid(),
          customer: { externalId: `bulk-${seq++}`, name: 'Child', parentId: root, billTo: BillTo.PARENT },
        });
        children.push(res.customer?.id ?? '');
      }
      const parent = await customer();
      const work = await ormWork(() =>
        p.customers.setCustomerParent({
          requestId: p.rid(),
          customerId: root,
          parentId: parent,
          billTo: BillTo.PARENT,
        }),
      );
      const moved = await Promise.all(
        children.map(async (id) => (await p.customers.getCustomer({ key: { case: 'id', value: id } })).customer),
      );
      expect(moved.map((c) => [c?.payerId, c?.ancestorIds])).toEqual(children.map(() => [parent, [root, parent]]));
      return work;
    });
    expect(total(twice)).toBeLessThanOrEqual(2 * total(once));
    // The subtree is read in one statement: no descendant is loaded on its own.
    expect(twice.loaded).toBe(once.loaded);
  });
});
