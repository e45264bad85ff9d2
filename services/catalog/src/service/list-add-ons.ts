import type { Em } from '@billing/kit/db';
import { addOnRepository } from '../adapter/add-on-repository.ts';
import { type ArchivableListInput, listByKey } from './list-by-key.ts';

/** A page of add-ons ordered by key, archived ones only when asked for. */
export function listAddOns(em: Em, input: ArchivableListInput) {
  return listByKey(input, (page) => addOnRepository.list(em, page));
}
