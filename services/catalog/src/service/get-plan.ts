import type { Em } from '@billing/kit/db';
import { findPlan } from '../adapter/plan-repository.ts';
import { planNotFound } from '../domain/errors.ts';
import type { Plan } from '../domain/types.ts';

/** The plan with this key; NOT_FOUND when there is none. */
export async function getPlan(em: Em, key: string): Promise<Plan> {
  const plan = await findPlan(em, key);
  if (!plan) throw planNotFound(key);
  return plan;
}
