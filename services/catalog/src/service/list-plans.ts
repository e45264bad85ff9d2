import type { Em } from '@billing/kit/db';
import { listPlans as listPlanRows } from '../adapter/plan-repository.ts';
import { type ArchivableListInput, listByKey } from './list-by-key.ts';

/** A page of plans ordered by key, archived ones only when asked for. */
export function listPlans(em: Em, input: ArchivableListInput) {
  return listByKey(input, (page) => listPlanRows(em, page));
}
