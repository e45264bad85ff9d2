// Reads and writes of plan rows: a plan as a whole (status) and its version pointers.
import type { Em } from '@billing/kit/db';
import { PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { LockMode } from '@mikro-orm/core';
import type { Plan } from '../domain/types.ts';
import { PlanRow } from './entities.ts';
import { fromDbPlan } from './mapping.ts';

/** The plan with this key, locked for update when `lock` is set (pessimistic write lock). */
export async function findPlan(em: Em, key: string, lock = false): Promise<Plan | undefined> {
  const row = await em.findOne(PlanRow, { key }, lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
  return row ? fromDbPlan(row) : undefined;
}

/** A page of plans ordered by key, after `after` (one more than `size`, to tell a next page). */
export async function listPlans(
  em: Em,
  page: { size: number; after: string | undefined; includeArchived: boolean },
): Promise<Plan[]> {
  const rows = await em.find(
    PlanRow,
    {
      ...(page.after === undefined ? {} : { key: { $gt: page.after } }),
      ...(page.includeArchived ? {} : { status: 'active' }),
    },
    { orderBy: { key: 'asc' }, limit: page.size + 1 },
  );
  return rows.map(fromDbPlan);
}

/** Every plan, archived ones too (a catalog holds hundreds at most). */
export async function allPlans(em: Em): Promise<Plan[]> {
  return (await em.find(PlanRow, {}, { orderBy: { key: 'asc' } })).map(fromDbPlan);
}

/** Inserts or updates a plan's row. */
export async function savePlan(em: Em, plan: Plan, archivedAt: Date | null, createdAt: Date): Promise<void> {
  const values = {
    status: plan.status === PlanStatus.ARCHIVED ? 'archived' : 'active',
    latestVersion: plan.latestVersion,
    draftVersion: plan.draftVersion,
    archivedAt,
  };
  const existing = await em.findOne(PlanRow, { key: plan.key });
  if (existing) em.assign(existing, values);
  else em.create(PlanRow, { key: plan.key, createdAt, ...values });
  await em.flush();
}
