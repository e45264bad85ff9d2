import { recordEvent } from '@billing/kit/outbox';
import type { AddOn } from '@billing/proto/billing/catalog/v1/resources_pb';
import { ProrationReason, SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionQuantityChanged } from '@billing/proto/events/subscription';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { assertState, type SubscriptionChange } from '../domain/subscription.ts';
import type { ChangeQuantityInput } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireSubscription } from './lookups.ts';
import { changeItems, commitChange, quantityChange } from './prorated-changes.ts';

const S = SubscriptionState;

/**
 * Changes seats and add-ons now (the add-ons it attaches read from the catalog): additions are charged at once,
 * removals credited on the next invoice.
 */
export async function changeQuantity(
  ctx: WriteContext,
  input: ChangeQuantityInput,
  addOns: ReadonlyMap<string, AddOn>,
): Promise<SubscriptionChange> {
  const record = await requireSubscription(ctx.em, input.subscriptionId, true);
  const s = record.subscription;
  assertState(s, [S.PENDING, S.TRIALING, S.ACTIVE, S.PAST_DUE, S.CANCELED], 'change the quantities of');
  const after = await quantityChange(ctx.em, record, input, addOns);
  const now = await clockTime(ctx.em, record.testClockId, ctx.now);
  const previous = { quantities: s.quantities, addons: s.addons };
  const items = await changeItems(ctx.em, record, after, now, ProrationReason.QUANTITY_CHANGE);
  await commitChange(ctx, record, after, now, items);
  await recordEvent(
    ctx.em,
    subscriptionQuantityChanged,
    {
      subscription: s,
      previousQuantities: previous.quantities,
      previousAddons: previous.addons,
      prorationItems: items,
    },
    eventContext(ctx, s.id, now),
  );
  return { record, prorationItems: items };
}
