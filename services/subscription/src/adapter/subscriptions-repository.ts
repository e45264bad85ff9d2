// Reads and writes of subscription rows. No business rules here: use cases in service/ decide, this persists.
import type { Em } from '@billing/kit/db';
import { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { type FilterQuery, type InferEntity, LockMode } from '@mikro-orm/core';
import type { SubscriptionRecord } from '../domain/subscription.ts';
import { customersPaidBy } from './customers-repository.ts';
import { SubscriptionRow, UNTRACKED } from './entities.ts';
import { fromDbSubscription, toDbSubscription } from './mapping.ts';

/** Inserts a subscription. */
export async function insertSubscription(em: Em, record: SubscriptionRecord): Promise<void> {
  await em.insert(SubscriptionRow, { id: record.subscription.id, ...toDbSubscription(record) });
}

/** Replaces a subscription's row, recomputing when it is next due. */
export async function saveSubscription(em: Em, record: SubscriptionRecord): Promise<void> {
  await em.nativeUpdate(SubscriptionRow, { id: record.subscription.id }, toDbSubscription(record));
}

/** A subscription by id, with its row locked when `lock`. */
export async function findSubscription(em: Em, id: string, lock = false): Promise<SubscriptionRecord | undefined> {
  const row = await em.findOne(
    SubscriptionRow,
    { id },
    lock ? { ...UNTRACKED, lockMode: LockMode.PESSIMISTIC_WRITE } : UNTRACKED,
  );
  return row ? fromDbSubscription(row) : undefined;
}

/** Filters of a subscription list; empty values do not filter. */
export interface SubscriptionFilters {
  /** This customer only. */
  customerId: string;
  /** Customers this payer pays for. */
  payerId: string;
  /** This plan only. */
  planKey: string;
  /** This plan version only. */
  planVersion: number;
  /** These states only (empty: all). */
  states: readonly SubscriptionState[];
  /** With a scheduled change only. */
  scheduledChangeOnly: boolean;
}

/** A page of subscriptions in creation order. */
export async function listSubscriptions(
  em: Em,
  filters: SubscriptionFilters,
  page: { size: number; after: string | undefined },
): Promise<{ seq: string; record: SubscriptionRecord }[]> {
  const where: FilterQuery<InferEntity<typeof SubscriptionRow>>[] = [{ seq: { $gt: page.after ?? '0' } }];
  if (filters.customerId) where.push({ customerId: filters.customerId });
  if (filters.payerId) where.push({ customerId: { $in: customersPaidBy(em, filters.payerId) } });
  if (filters.planKey) where.push({ planKey: filters.planKey });
  if (filters.planVersion) where.push({ planVersion: filters.planVersion });
  if (filters.states.length > 0) where.push({ state: { $in: filters.states.map(String) } });
  if (filters.scheduledChangeOnly) where.push({ hasScheduledChange: true });
  const rows = await em.find(
    SubscriptionRow,
    { $and: where },
    { ...UNTRACKED, orderBy: { seq: 'asc' }, limit: page.size + 1 },
  );
  return rows.map((r) => ({ seq: r.seq, record: fromDbSubscription(r) }));
}

/**
 * Locks and returns up to `limit` real-time subscriptions due by `now`, in due order, skipping rows another
 * replica holds (`for update skip locked`): replicas share the due rows, and none waits on another.
 */
export async function claimDueSubscriptions(em: Em, now: Date, limit: number): Promise<SubscriptionRecord[]> {
  const rows = await em.find(
    SubscriptionRow,
    { dueAt: { $lte: now }, testClockId: null },
    {
      ...UNTRACKED,
      orderBy: [{ dueAt: 'asc' }, { seq: 'asc' }],
      limit,
      lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE,
    },
  );
  return rows.map(fromDbSubscription);
}

/** Locks and returns the test clock's subscription due first by `until`, if any. */
export async function nextDueOnTestClock(em: Em, testClockId: string, until: Date) {
  const row = await em.findOne(
    SubscriptionRow,
    { testClockId, dueAt: { $lte: until } },
    { ...UNTRACKED, orderBy: [{ dueAt: 'asc' }, { seq: 'asc' }], lockMode: LockMode.PESSIMISTIC_WRITE },
  );
  return row ? fromDbSubscription(row) : undefined;
}

/** Live subscriptions on one plan version (for migrations), locked, oldest first. */
export async function liveSubscriptionsOn(em: Em, planKey: string, version: number): Promise<SubscriptionRecord[]> {
  const rows = await em.find(
    SubscriptionRow,
    { planKey, planVersion: version, state: { $ne: String(SubscriptionState.ENDED) } },
    { ...UNTRACKED, orderBy: { seq: 'asc' }, lockMode: LockMode.PESSIMISTIC_WRITE },
  );
  return rows.map(fromDbSubscription);
}
