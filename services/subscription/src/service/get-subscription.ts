import type { SubscriptionRecord } from '../domain/subscription.ts';
import type { ReadContext } from './context.ts';
import { requireSubscription } from './lookups.ts';

/** The subscription with this id, or NOT_FOUND SUBSCRIPTION_NOT_FOUND. */
export function getSubscription(ctx: ReadContext, id: string): Promise<SubscriptionRecord> {
  return requireSubscription(ctx.em, id);
}
