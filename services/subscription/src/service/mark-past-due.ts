import { recordEvent } from '@billing/kit/outbox';
import { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionPastDue } from '@billing/proto/events/subscription';
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { saveSubscription } from '../adapter/subscriptions-repository.ts';
import { transition } from '../domain/subscription.ts';
import { eventContext, type WriteContext } from './context.ts';
import { forEachSubscription } from './lookups.ts';

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
    s.updateTime = timestampFromDate(ctx.now);
    await saveSubscription(ctx.em, record);
    await recordEvent(
      ctx.em,
      subscriptionPastDue,
      { subscription: s, invoiceId: failure.invoiceId, graceEndTime: failure.graceEndTime },
      eventContext(ctx, s.id, ctx.now),
    );
  });
}
