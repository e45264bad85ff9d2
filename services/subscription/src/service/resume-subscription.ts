import { recordEvent } from '@billing/kit/outbox';
import { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionResumed } from '@billing/proto/events/subscription';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { saveSubscription } from '../adapter/subscriptions-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { invalidTransition } from '../domain/errors.ts';
import { assertState, type SubscriptionRecord, transition } from '../domain/subscription.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireSubscription } from './lookups.ts';

const S = SubscriptionState;

/** Undoes a cancellation scheduled for the period end, while its time has not come. */
export async function resumeSubscription(ctx: WriteContext, subscriptionId: string): Promise<SubscriptionRecord> {
  const record = await requireSubscription(ctx.em, subscriptionId, true);
  const s = record.subscription;
  assertState(s, [S.CANCELED], 'resume');
  const now = await clockTime(ctx.em, record.testClockId, ctx.now);
  if (s.cancelTime && timestampDate(s.cancelTime).getTime() <= now.getTime()) {
    throw invalidTransition('the cancellation has taken effect; it can no longer be undone', s.id);
  }
  transition(s, record.stateBeforeCancel === S.UNSPECIFIED ? S.ACTIVE : record.stateBeforeCancel, 'resume');
  s.cancelTime = undefined;
  s.updateTime = timestampFromDate(now);
  await saveSubscription(ctx.em, record);
  await recordEvent(ctx.em, subscriptionResumed, { subscription: s }, eventContext(ctx, s.id, now));
  return record;
}
