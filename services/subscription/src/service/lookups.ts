// The lookups use cases share: a customer, a subscription, a test clock or a kept plan version, or the error
// that says it is not there.
import type { Em } from '@billing/kit/db';
import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { Customer, TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import { findCustomer } from '../adapter/customers-repository.ts';
import { findPlanVersion } from '../adapter/plan-versions-repository.ts';
import { findSubscription } from '../adapter/subscriptions-repository.ts';
import { findTestClock, lockTestClock } from '../adapter/test-clocks-repository.ts';
import { customerNotFound, subscriptionNotFound, testClockBusy, testClockNotFound } from '../domain/errors.ts';
import type { SubscriptionRecord } from '../domain/subscription.ts';

/** The customer with this id (its row locked when `lock`), or NOT_FOUND CUSTOMER_NOT_FOUND. */
export async function requireCustomer(em: Em, id: string, lock = false): Promise<Customer> {
  const customer = await findCustomer(em, id, lock);
  if (!customer) throw customerNotFound(id);
  return customer;
}

/** The subscription with this id (its row locked when `lock`), or NOT_FOUND SUBSCRIPTION_NOT_FOUND. */
export async function requireSubscription(em: Em, id: string, lock = false): Promise<SubscriptionRecord> {
  const record = await findSubscription(em, id, lock);
  if (!record) throw subscriptionNotFound(id);
  return record;
}

/** The test clock with this id, or NOT_FOUND TEST_CLOCK_NOT_FOUND. */
export async function requireTestClock(em: Em, id: string): Promise<TestClock> {
  const clock = await findTestClock(em, id);
  if (!clock) throw testClockNotFound(id);
  return clock;
}

/** The test clock with this id, its row locked; FAILED_PRECONDITION TEST_CLOCK_BUSY while an advance holds it. */
export async function lockRequiredTestClock(em: Em, id: string): Promise<TestClock> {
  const clock = await lockTestClock(em, id);
  if (clock === 'busy') throw testClockBusy(id);
  if (!clock) throw testClockNotFound(id);
  return clock;
}

/** A plan version a subscription is on; every version subscribed to is kept, so a missing one is a fault. */
export async function requirePlanVersion(em: Em, planKey: string, version: number): Promise<PlanVersion> {
  const found = await findPlanVersion(em, planKey, version);
  if (!found) throw new Error(`plan version ${planKey} v${version} is not kept locally`);
  return found;
}

/**
 * Visits each subscription of `ids` that exists, its row locked, in id order: the same order in every
 * transaction, so two that lock the same rows never wait on each other in a cycle.
 */
export async function forEachSubscription(
  em: Em,
  ids: readonly string[],
  visit: (record: SubscriptionRecord) => Promise<void>,
): Promise<void> {
  for (const id of [...new Set(ids)].sort()) {
    const record = await findSubscription(em, id, true);
    if (record) await visit(record);
  }
}
