// The billing period an event time falls in, for deltas. Until usage follows the subscription service's
// periods (issue 3), every customer has calendar months in UTC, the contract's rule for a customer without a
// subscription.

/** The UTC calendar month containing `time`, as [start, end). */
export function billingPeriodOf(time: Date): [Date, Date] {
  const start = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), 1));
  const end = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth() + 1, 1));
  return [start, end];
}
