import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { findPlan, findPlanVersion, loadLookup, saveDraft, savePlan } from '../adapter/repository.ts';
import type { PlanVersion, PlanVersionSpec } from '../domain/types.ts';
import { validatePlanSpec } from '../domain/validate.ts';
import type { WriteContext } from './context.ts';

/**
 * Replaces the content of a plan's draft, starting the next version's draft if there is none. `version`
 * guards the edit: naming a published version fails, since published versions never change.
 */
export async function updatePlanDraft(
  ctx: WriteContext,
  planKey: string,
  spec: PlanVersionSpec,
  version = 0,
): Promise<PlanVersion> {
  const plan = await findPlan(ctx.em, planKey, true);
  if (!plan) throw new NotFoundError('PLAN_NOT_FOUND', `no plan "${planKey}"`);
  if (plan.status === PlanStatus.ARCHIVED) {
    throw new FailedPreconditionError('PLAN_ARCHIVED', `plan "${planKey}" is archived`);
  }
  const draftVersion = plan.draftVersion || plan.latestVersion + 1;
  if (version !== 0 && version !== draftVersion) {
    if (version > 0 && version <= plan.latestVersion) {
      throw new FailedPreconditionError('VERSION_IMMUTABLE', `version ${version} of "${planKey}" is published`);
    }
    throw new FailedPreconditionError('DRAFT_VERSION_MISMATCH', `the draft of "${planKey}" is version ${draftVersion}`);
  }
  const violations = validatePlanSpec(spec, await loadLookup(ctx.em));
  if (violations.length > 0) throw new InvalidArgumentError('the plan version is not valid', violations);
  await saveDraft(ctx.em, planKey, draftVersion, spec, ctx.now);
  if (plan.draftVersion !== draftVersion) await savePlan(ctx.em, { ...plan, draftVersion }, null, ctx.now);
  const draft = await findPlanVersion(ctx.em, planKey, draftVersion);
  if (!draft) throw new Error('the draft just written cannot be read back');
  return draft;
}
