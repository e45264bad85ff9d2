import { EndReason, SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { endSubscription } from '../domain/billing-step.ts';
import type { WriteContext } from './context.ts';
import { forEachSubscription } from './lookups.ts';
import { loadStepInputs, saveStep } from './subscription-writes.ts';

/**
 * Ends the subscriptions an invoice given up on bills, at `ctx.now` (the event's time), closing their periods
 * there. Ended and unknown subscriptions are left as they are.
 */
export async function endUncollectible(ctx: WriteContext, subscriptionIds: readonly string[]): Promise<void> {
  await forEachSubscription(ctx.em, subscriptionIds, async (record) => {
    if (record.subscription.state === SubscriptionState.ENDED) return;
    const inputs = await loadStepInputs(ctx, record);
    await saveStep(ctx, endSubscription(record, inputs, ctx.now, EndReason.UNCOLLECTIBLE));
  });
}
