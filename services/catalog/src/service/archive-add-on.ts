import { recordEvent } from '@billing/kit/outbox';
import { addOnArchived } from '@billing/proto/events/catalog';
import { addOnRepository } from '../adapter/add-on-repository.ts';
import type { AddOn } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';
import { getAddOn } from './get-add-on.ts';

/** Archives an add-on; archiving twice changes nothing. */
export async function archiveAddOn(ctx: WriteContext, key: string): Promise<AddOn> {
  const current = await getAddOn(ctx.em, key);
  if (current.archived) return current;
  const addOn = await addOnRepository.save(ctx.em, { ...current, archived: true }, ctx.now);
  await recordEvent(ctx.em, addOnArchived, { addOn }, eventContext(ctx, `addon:${key}`));
  return addOn;
}
