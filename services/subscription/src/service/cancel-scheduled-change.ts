import { recordEvent } from '@billing/kit/outbox';
import { subscriptionScheduledChangeCanceled } from '@billing/proto/events/subscription';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { saveSubscription } from '../adapter/subscriptions-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { noScheduledChange } from '../domain/errors.ts';
import type { SubscriptionRecord } from '../domain/subscription.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireSubscription } from './lookups.ts';

/** Drops the change scheduled for the period end. */
export async function cancelScheduledChange(ctx: WriteContext, subscriptionId: string): Promise<SubscriptionRecord> {
  const record = await requireSubscription(ctx.em, subscriptionId, true);
  const s = record.subscription;
  const change = s.scheduledChange;
  if (!change) throw noScheduledChange(s.id);
  const now = await clockTime(ctx.em, record.testClockId, ctx.now);
  s.scheduledChange = undefined;
  s.updateTime = timestampFromDate(now);
  await saveSubscription(ctx.em, record);
  await recordEvent(
    ctx.em,
    subscriptionScheduledChangeCanceled,
    { subscription: s, canceledChange: change },
    eventContext(ctx, s.id, now),
  );
  return record;
}
