import type { Em } from '@billing/kit/db';
import { addOnRepository } from '../adapter/add-on-repository.ts';
import { addOnNotFound } from '../domain/errors.ts';
import type { AddOn } from '../domain/types.ts';

/** The add-on with this key; NOT_FOUND when there is none. */
export async function getAddOn(em: Em, key: string): Promise<AddOn> {
  const addOn = await addOnRepository.find(em, key);
  if (!addOn) throw addOnNotFound(key);
  return addOn;
}
