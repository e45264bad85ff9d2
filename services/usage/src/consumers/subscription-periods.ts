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
import type { KnownPeriod } from '../domain/periods.ts';
import { recordCurrentPeriod, recordPeriod } from '../service/record-billing-period.ts';

/** A subscription's period as the usage service keeps it, or undefined when the event carries none. */
function knownPeriod(
  s: Subscription | undefined,
  period: Period | undefined,
  closed: boolean,
): KnownPeriod | undefined {
  if (!s || !period?.startTime || !period.endTime) return undefined;
  return {
    subscriptionId: s.id,
    customer: s.customerExternalId,
    start: timestampDate(period.startTime),
    end: timestampDate(period.endTime),
    closed,
  };
}

/** The current period of a subscription that has started and not ended, as announced. */
function currentPeriod(s: Subscription | undefined): KnownPeriod | undefined {
  if (!s || s.state === SubscriptionState.PENDING || s.state === SubscriptionState.ENDED) return undefined;
  return knownPeriod(s, s.currentPeriod, false);
}

/** Records the current period of the subscription of an event, if it has one. */
async function recordCurrentPeriodOf(em: Em, s: Subscription | undefined, now: Date): Promise<void> {
  const period = currentPeriod(s);
  if (period) await recordCurrentPeriod(em, period, now);
}

/** The consumer `usage-periods` of the subscription service's period events. */
export const subscriptionPeriodsConsumer: ConsumerSpec = {
  name: 'usage-periods',
  stream: 'subscription',
  handlers: [
    on(subscriptionCreated, (em, { payload, envelope }) =>
      recordCurrentPeriodOf(em, payload.subscription, envelope.occurredTime),
    ),
    on(subscriptionActivated, (em, { payload, envelope }) =>
      recordCurrentPeriodOf(em, payload.subscription, envelope.occurredTime),
    ),
    on(subscriptionRenewed, (em, { payload, envelope }) =>
      recordCurrentPeriodOf(em, payload.subscription, envelope.occurredTime),
    ),
    on(subscriptionPeriodClosed, async (em, { payload, envelope }) => {
      const closed = knownPeriod(payload.subscription, payload.closedPeriod, true);
      if (closed) await recordPeriod(em, closed);
      await recordCurrentPeriodOf(em, payload.subscription, envelope.occurredTime);
    }),
  ],
};
