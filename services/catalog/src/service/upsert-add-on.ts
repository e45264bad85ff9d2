import { refuseViolations } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { addOnUpdated } from '@billing/proto/events/catalog';
import { addOnRepository } from '../adapter/add-on-repository.ts';
import type { AddOn } from '../domain/types.ts';
import { validateAddOn } from '../domain/validate.ts';
import { loadCatalogLookup } from './catalog-lookup.ts';
import { eventContext, type WriteContext } from './context.ts';

/**
 * Creates or replaces an add-on (reviving it if archived), valid against the catalog (its fields named under
 * `prefix`). Add-ons are not versioned: subscriptions and invoices copy what they bought at the time they bought it.
 */
export async function upsertAddOn(ctx: WriteContext, input: AddOn, prefix = 'add_on'): Promise<AddOn> {
  const violations = validateAddOn(input, await loadCatalogLookup(ctx.em), prefix);
  refuseViolations(violations, 'the add-on is not valid');
  const addOn = await addOnRepository.save(ctx.em, { ...input, archived: false }, ctx.now);
  await recordEvent(ctx.em, addOnUpdated, { addOn }, eventContext(ctx, `addon:${addOn.key}`));
  return addOn;
}
