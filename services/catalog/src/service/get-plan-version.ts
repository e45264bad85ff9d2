import type { Em } from '@billing/kit/db';
import { findPlanVersion } from '../adapter/plan-version-repository.ts';
import { planVersionNotFound } from '../domain/errors.ts';
import type { PlanVersion } from '../domain/types.ts';
import type { PlanVersionRef } from '../domain/validate.ts';
import { getPlan } from './get-plan.ts';

/** One version of a plan (its latest published one for `latest`); NOT_FOUND for an unknown plan or version. */
export async function getPlanVersion(em: Em, ref: PlanVersionRef): Promise<PlanVersion> {
  const plan = await getPlan(em, ref.planKey);
  const number = ref.version === 'latest' ? plan.latestVersion : ref.version;
  const version = number > 0 ? await findPlanVersion(em, ref.planKey, number) : undefined;
  if (!version) throw planVersionNotFound(ref.planKey, number);
  return version;
}
