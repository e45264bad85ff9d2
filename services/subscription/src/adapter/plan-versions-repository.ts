// Reads and writes of the plan versions kept locally (copied from the catalog the first time they are used).
import type { Em } from '@billing/kit/db';
import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import { PlanVersionRow, UNTRACKED } from './entities.ts';
import { fromDbPlanVersion, toDbPlanVersion } from './mapping.ts';

/** Keeps a published plan version (they never change, so the first copy is kept). */
export async function savePlanVersion(em: Em, version: PlanVersion): Promise<void> {
  await em.upsert(PlanVersionRow, toDbPlanVersion(version), { ...UNTRACKED, onConflictAction: 'ignore' });
}

/** A plan version kept before. */
export async function findPlanVersion(em: Em, planKey: string, version: number): Promise<PlanVersion | undefined> {
  const row = await em.findOne(PlanVersionRow, { planKey, version }, UNTRACKED);
  return row ? fromDbPlanVersion(row) : undefined;
}
