import { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionPastDue } from '@billing/proto/events/subscription';
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { transition } from '../domain/subscription.ts';
import type { WriteContext } from './context.ts';
import { forEachSubscription } from './lookups.ts';
import { saveChange } from './subscription-writes.ts';

/** A payment that failed, as invoicing announced it. */
export interface PaymentFailure {
  /** The subscriptions the invoice bills. */
  subscriptionIds: readonly string[];
  /** The invoice whose payment failed. */
  invoiceId: string;
  /** Until when the subscriptions stay entitled. */
  graceEndTime: Timestamp | undefined;
}

/**
 * Makes the ACTIVE subscriptions of a failed payment PAST_DUE at `ctx.now` (the event's time). Others are left as
 * they are: a later failure of the same dunning changes nothing, and unknown subscriptions are not this service's.
 */
export async function markPastDue(ctx: WriteContext, failure: PaymentFailure): Promise<void> {
  await forEachSubscription(ctx.em, failure.subscriptionIds, async (record) => {
    const s = record.subscription;
    if (s.state !== SubscriptionState.ACTIVE) return;
    transition(s, SubscriptionState.PAST_DUE, 'mark past due');
    s.pastDueTime = timestampFromDate(ctx.now);
    await saveChange(ctx, record, ctx.now, subscriptionPastDue, {
      subscription: s,
      invoiceId: failure.invoiceId,
      graceEndTime: failure.graceEndTime,
    });
  });
}
