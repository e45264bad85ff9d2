import { InvalidArgumentError } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { addOnUpdated } from '@billing/proto/events/catalog';
import { addOns, loadLookup } from '../adapter/repository.ts';
import type { AddOn } from '../domain/types.ts';
import { validateAddOn } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';

/**
 * Creates or replaces an add-on (reviving it if archived). Add-ons are not versioned: subscriptions and
 * invoices copy what they bought at the time they bought it.
 */
export async function upsertAddOn(ctx: WriteContext, input: AddOn, prefix = 'add_on'): Promise<AddOn> {
  const violations = validateAddOn(input, await loadLookup(ctx.em), prefix);
  if (violations.length > 0) throw new InvalidArgumentError('the add-on is not valid', violations);
  const addOn = await addOns.save(ctx.em, { ...input, archived: false }, ctx.now);
  await recordEvent(ctx.em, addOnUpdated, { addOn }, eventContext(ctx, `addon:${addOn.key}`));
  return addOn;
}
