// The billing clock: what happens to a subscription when its time comes, one step at a time, in time order.
// Each step runs in the transaction that holds the subscription's row lock, and a period's close is recorded
// under a unique key, so every period closes exactly once however many replicas run the clock
// (docs/billing-clock.md).
import type { Database } from '@billing/kit/db';
import { claimDueSubscriptions } from '../adapter/subscriptions-repository.ts';
import { dueStep } from '../domain/billing-step.ts';
import { nextDue, type SubscriptionRecord } from '../domain/subscription.ts';
import { loadStepInputs, saveStep } from './billing-steps.ts';
import type { WriteContext } from './context.ts';

/** Processes the one step due for `record` at `at` (its next due time): loads what it needs, saves what it did. */
export async function advance(ctx: WriteContext, record: SubscriptionRecord, at: Date): Promise<void> {
  await saveStep(ctx, dueStep(record, await loadStepInputs(ctx, record), at));
}

/** Processes everything due on real time by `now`, one subscription step per transaction; returns the count. */
export async function runBillingClock(db: Database, now: () => Date, requestId = 'billing-clock'): Promise<number> {
  let steps = 0;
  for (;;) {
    const done = await db.transaction(async (em) => {
      const [record] = await claimDueSubscriptions(em, now(), 1);
      if (!record) return false;
      const due = nextDue(record);
      if (!due) return true;
      await advance({ em, now: now(), requestId }, record, due);
      return true;
    });
    if (!done) return steps;
    steps += 1;
  }
}
