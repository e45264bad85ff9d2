import { NotFoundError } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { addOnArchived } from '@billing/proto/events/catalog';
import { addOns } from '../adapter/repository.ts';
import type { AddOn } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';

/** Archives an add-on; archiving twice changes nothing. */
export async function archiveAddOn(ctx: WriteContext, key: string): Promise<AddOn> {
  const current = await addOns.find(ctx.em, key);
  if (!current) throw new NotFoundError('ADD_ON_NOT_FOUND', `no add-on "${key}"`);
  if (current.archived) return current;
  const addOn = await addOns.save(ctx.em, { ...current, archived: true }, ctx.now);
  await recordEvent(ctx.em, addOnArchived, { addOn }, eventContext(ctx, `addon:${key}`));
  return addOn;
}
