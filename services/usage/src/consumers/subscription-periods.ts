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
} from '@billing/subscription/domain/events';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { savePeriod } from '../adapter/usage-store.ts';

async function savePeriodOf(em: Em, s: Subscription | undefined, period: Period | undefined, closed: boolean) {
  if (!s || !period?.startTime || !period.endTime) return;
  await savePeriod(em, {
    subscriptionId: s.id,
    customer: s.customerExternalId,
    start: timestampDate(period.startTime),
    end: timestampDate(period.endTime),
    closed,
  });
}

/** Records the subscription's current period, unless it has not started or has ended. */
async function saveCurrentPeriod(em: Em, s: Subscription | undefined) {
  if (!s || s.state === SubscriptionState.PENDING || s.state === SubscriptionState.ENDED) return;
  await savePeriodOf(em, s, s.currentPeriod, false);
}

/** The consumer `usage-periods` of the subscription service's period events. */
export const subscriptionPeriodsConsumer: ConsumerSpec = {
  name: 'usage-periods',
  stream: 'subscription',
  handlers: [
    on(subscriptionCreated, (em, { payload }) => saveCurrentPeriod(em, payload.subscription)),
    on(subscriptionActivated, (em, { payload }) => saveCurrentPeriod(em, payload.subscription)),
    on(subscriptionRenewed, (em, { payload }) => saveCurrentPeriod(em, payload.subscription)),
    on(subscriptionPeriodClosed, async (em, { payload }) => {
      await savePeriodOf(em, payload.subscription, payload.closedPeriod, true);
      await saveCurrentPeriod(em, payload.subscription);
    }),
  ],
};
