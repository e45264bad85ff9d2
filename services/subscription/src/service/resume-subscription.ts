import { SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionResumed } from '@billing/proto/events/subscription';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { invalidTransition } from '../domain/errors.ts';
import { assertState, type SubscriptionRecord, transition } from '../domain/subscription.ts';
import type { WriteContext } from './context.ts';
import { requireSubscription } from './lookups.ts';
import { saveChange } from './subscription-writes.ts';

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
  await saveChange(ctx, record, now, subscriptionResumed, { subscription: s });
  return record;
}
