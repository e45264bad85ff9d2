// Keeping each customer's billing periods from the subscription service's announcements: usage is counted per
// subscription period, and an event falling in a period that has closed is late (S11).
import type { Em } from '@billing/kit/db';
import { periodRecorded, savePeriod } from '../adapter/billing-period-repository.ts';
import { lockCustomerExclusive } from '../adapter/locks.ts';
import { requestRecompute } from '../adapter/pending-delta-repository.ts';
import { metersWithUsage } from '../adapter/rollup-read-repository.ts';
import type { KnownPeriod } from '../domain/periods.ts';

/** Records a period as announced (open, or closed); returns whether it was new. */
export async function recordPeriod(em: Em, period: KnownPeriod): Promise<boolean> {
  // Most announcements repeat what is recorded (created then activated, redeliveries): they change nothing and
  // need not wait for the customer's batches.
  if (await periodRecorded(em, period)) return false;
  // Batches of the customer read its periods before they store events: each sees this change wholly or not at
  // all, and one that committed before it is seen by the recompute below. (The lock is a bucket of customers:
  // while it waits for the batches in progress, new ones of the bucket wait behind it.)
  await lockCustomerExclusive(em, period.customer);
  return savePeriod(em, period);
}

/**
 * Records a subscription's current period (open). Usage ingested in a new period before it was known (the
 * consumer's lag) was counted in the calendar month: the period is recomputed for every meter with usage in it,
 * so its published value is whole.
 */
export async function recordCurrentPeriod(em: Em, period: KnownPeriod, now: Date): Promise<void> {
  if (!(await recordPeriod(em, period))) return;
  const meters = await metersWithUsage(em, period.customer, period.start, period.end);
  await requestRecompute(
    em,
    period.customer,
    meters.map((meter) => ({ meterKey: meter.key, aggregation: meter.aggregation, period })),
    now,
  );
}
