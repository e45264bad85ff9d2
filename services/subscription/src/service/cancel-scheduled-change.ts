import { subscriptionScheduledChangeCanceled } from '@billing/proto/events/subscription';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { noScheduledChange } from '../domain/errors.ts';
import type { SubscriptionRecord } from '../domain/subscription.ts';
import type { WriteContext } from './context.ts';
import { requireSubscription } from './lookups.ts';
import { saveChange } from './subscription-writes.ts';

/** Drops the change scheduled for the period end. */
export async function cancelScheduledChange(ctx: WriteContext, subscriptionId: string): Promise<SubscriptionRecord> {
  const record = await requireSubscription(ctx.em, subscriptionId, true);
  const s = record.subscription;
  const change = s.scheduledChange;
  if (!change) throw noScheduledChange(s.id);
  const now = await clockTime(ctx.em, record.testClockId, ctx.now);
  s.scheduledChange = undefined;
  await saveChange(ctx, record, now, subscriptionScheduledChangeCanceled, { subscription: s, canceledChange: change });
  return record;
}
