import { recordEvent } from '@billing/kit/outbox';
import { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionActivated } from '@billing/proto/events/subscription';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { saveSubscription } from '../adapter/subscriptions-repository.ts';
import { transition } from '../domain/subscription.ts';
import { eventContext, type WriteContext } from './context.ts';
import { forEachSubscription } from './lookups.ts';

const S = SubscriptionState;

/**
 * After a payment settled their invoice, at `ctx.now` (the event's time): PAST_DUE subscriptions are ACTIVE again,
 * and canceled ones that were past due will resume to ACTIVE. Others are left as they are.
 */
export async function reactivateAfterPayment(ctx: WriteContext, subscriptionIds: readonly string[]): Promise<void> {
  await forEachSubscription(ctx.em, subscriptionIds, async (record) => {
    const s = record.subscription;
    const resumesToPastDue = s.state === S.CANCELED && record.stateBeforeCancel === S.PAST_DUE;
    if (s.state !== S.PAST_DUE && !resumesToPastDue) return;
    if (resumesToPastDue) record.stateBeforeCancel = S.ACTIVE;
    else transition(s, S.ACTIVE, 'reactivate');
    s.pastDueTime = undefined;
    s.updateTime = timestampFromDate(ctx.now);
    await saveSubscription(ctx.em, record);
    if (!resumesToPastDue) {
      await recordEvent(
        ctx.em,
        subscriptionActivated,
        { subscription: s, previousState: S.PAST_DUE },
        eventContext(ctx, s.id, ctx.now),
      );
    }
  });
}
