import { refuseViolations } from '@billing/kit/errors';
import { PlanSchema, PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { create } from '@bufbuild/protobuf';
import { findPlan, savePlan } from '../adapter/plan-repository.ts';
import { findPlanVersion, saveDraft } from '../adapter/plan-version-repository.ts';
import { planExists } from '../domain/errors.ts';
import { KEY_PATTERN, type Plan, type PlanVersion, type PlanVersionSpec } from '../domain/types.ts';
import { validatePlanSpec } from '../domain/validate.ts';
import { loadCatalogLookup } from './catalog-lookup.ts';
import type { WriteContext } from './context.ts';

/** Creates a plan with its first draft (version 1). */
export async function createPlan(
  ctx: WriteContext,
  key: string,
  spec: PlanVersionSpec,
): Promise<{ plan: Plan; draft: PlanVersion }> {
  const violations = KEY_PATTERN.test(key)
    ? []
    : [{ field: 'key', description: 'must be lower snake case, 1-64 characters' }];
  violations.push(...validatePlanSpec(spec, await loadCatalogLookup(ctx.em)));
  refuseViolations(violations, 'the plan is not valid');
  if (await findPlan(ctx.em, key)) throw planExists(key);
  const plan = create(PlanSchema, { key, status: PlanStatus.ACTIVE, latestVersion: 0, draftVersion: 1 });
  await savePlan(ctx.em, plan, null, ctx.now);
  await saveDraft(ctx.em, key, 1, spec, ctx.now);
  const draft = await findPlanVersion(ctx.em, key, 1);
  const stored = await findPlan(ctx.em, key);
  if (!draft || !stored) throw new Error('the plan just written cannot be read back');
  return { plan: stored, draft };
}
