// The billing clock: what happens to a subscription when its time comes, one step at a time, in time order.
// Each step runs in the transaction that holds the subscription's row lock, and a period's close is recorded
// under a unique key, so every period closes exactly once however many replicas run the clock
// (docs/billing-clock.md).
import type { Database } from '@billing/kit/db';
import { claimDueSubscriptions } from '../adapter/subscriptions-repository.ts';
import { advance, dueBy } from './subscription-writes.ts';

/** Processes everything due on real time by `now`, one subscription step per transaction; returns the count. */
export async function runBillingClock(db: Database, now: () => Date, requestId = 'billing-clock'): Promise<number> {
  let steps = 0;
  for (;;) {
    const claimed = await db.transaction(async (em) => {
      const time = now();
      const [record] = await claimDueSubscriptions(em, time, 1);
      if (!record) return 'none';
      const ctx = { em, now: time, requestId };
      const due = await dueBy(ctx, record, time);
      if (!due) return 'rescheduled';
      await advance(ctx, record, due);
      return 'stepped';
    });
    if (claimed === 'none') return steps;
    if (claimed === 'stepped') steps += 1;
  }
}
