import type { Em } from '@billing/kit/db';
import { featureRepository } from '../adapter/feature-repository.ts';
import { type ArchivableListInput, listByKey } from './list-by-key.ts';

/** A page of features ordered by key, archived ones only when asked for. */
export function listFeatures(em: Em, input: ArchivableListInput) {
  return listByKey(input, (page) => featureRepository.list(em, page));
}
