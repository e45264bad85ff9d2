// The usage service's copy of each customer's billing periods, kept from the subscription service's events:
// usage is counted per subscription period, and an event falling in a period that has closed is late (S11).

import { type ConsumerSpec, on } from '@billing/kit/consumer';
import type { Em } from '@billing/kit/db';
import { type Subscription, SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import type { Period } from '@billing/proto/billing/type/v1/types_pb';
import {
  subscriptionActivated,
  subscriptionCreated,
  subscriptionPeriodClosed,
  subscriptionRenewed,
} from '@billing/proto/events/subscription';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  lockCustomerExclusive,
  metersWithUsage,
  periodRecorded,
  requestRecompute,
  savePeriod,
} from '../adapter/usage-store.ts';

/** Records the period; returns it when it was new. */
async function savePeriodOf(em: Em, s: Subscription | undefined, period: Period | undefined, closed: boolean) {
  if (!s || !period?.startTime || !period.endTime) return undefined;
  const saved = {
    subscriptionId: s.id,
    customer: s.customerExternalId,
    start: timestampDate(period.startTime),
    end: timestampDate(period.endTime),
    closed,
  };
  // Most announcements repeat what is recorded (created then activated, redeliveries): they change nothing and
  // need not wait for the customer's batches.
  if (await periodRecorded(em, saved)) return undefined;
  // Batches of the customer read its periods before they store events: each sees this change wholly or not at
  // all, and one that committed before it is seen by the recompute below. (The lock is a bucket of customers:
  // while it waits for the batches in progress, new ones of the bucket wait behind it.)
  await lockCustomerExclusive(em, s.customerExternalId);
  return (await savePeriod(em, saved)) ? saved : undefined;
}

/**
 * Records the subscription's current period, unless it has not started or has ended. Usage ingested in a new
 * period before this consumer knew it (its lag) was counted in the calendar month: the period is recomputed for
 * every meter with usage in it, so its published value is whole.
 */
async function saveCurrentPeriod(em: Em, s: Subscription | undefined, now: Date) {
  if (!s || s.state === SubscriptionState.PENDING || s.state === SubscriptionState.ENDED) return;
  const period = await savePeriodOf(em, s, s.currentPeriod, false);
  if (!period) return;
  const meters = await metersWithUsage(em, period.customer, period.start, period.end);
  await requestRecompute(
    em,
    period.customer,
    meters.map((meter) => ({ meterKey: meter.key, aggregation: meter.aggregation, period })),
    now,
  );
}

/** The consumer `usage-periods` of the subscription service's period events. */
export const subscriptionPeriodsConsumer: ConsumerSpec = {
  name: 'usage-periods',
  stream: 'subscription',
  handlers: [
    on(subscriptionCreated, (em, { payload, envelope }) =>
      saveCurrentPeriod(em, payload.subscription, envelope.occurredTime),
    ),
    on(subscriptionActivated, (em, { payload, envelope }) =>
      saveCurrentPeriod(em, payload.subscription, envelope.occurredTime),
    ),
    on(subscriptionRenewed, (em, { payload, envelope }) =>
      saveCurrentPeriod(em, payload.subscription, envelope.occurredTime),
    ),
    on(subscriptionPeriodClosed, async (em, { payload, envelope }) => {
      await savePeriodOf(em, payload.subscription, payload.closedPeriod, true);
      await saveCurrentPeriod(em, payload.subscription, envelope.occurredTime);
    }),
  ],
};
