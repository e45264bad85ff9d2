import { refuseViolations } from '@billing/kit/errors';
import { PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { findPlan, savePlan } from '../adapter/plan-repository.ts';
import { findPlanVersion, saveDraft } from '../adapter/plan-version-repository.ts';
import { draftVersionMismatch, planArchived, planNotFound, versionImmutable } from '../domain/errors.ts';
import type { PlanVersion } from '../domain/types.ts';
import { type PlanDraftInput, validatePlanSpec } from '../domain/validate.ts';
import { loadCatalogLookup } from './catalog-lookup.ts';
import type { WriteContext } from './context.ts';

/**
 * Replaces the content of a plan's draft, starting the next version's draft if there is none. The input's
 * `version` guards the edit: naming a published version fails, since published versions never change.
 */
export async function updatePlanDraft(ctx: WriteContext, input: PlanDraftInput): Promise<PlanVersion> {
  const { planKey, spec, version } = input;
  const plan = await findPlan(ctx.em, planKey, true);
  if (!plan) throw planNotFound(planKey);
  if (plan.status === PlanStatus.ARCHIVED) throw planArchived(planKey);
  const draftVersion = plan.draftVersion || plan.latestVersion + 1;
  if (version !== 0 && version !== draftVersion) {
    if (version > 0 && version <= plan.latestVersion) throw versionImmutable(planKey, version);
    throw draftVersionMismatch(planKey, draftVersion);
  }
  const violations = validatePlanSpec(spec, await loadCatalogLookup(ctx.em));
  refuseViolations(violations, 'the plan version is not valid');
  await saveDraft(ctx.em, planKey, draftVersion, spec, ctx.now);
  if (plan.draftVersion !== draftVersion) await savePlan(ctx.em, { ...plan, draftVersion }, null, ctx.now);
  const draft = await findPlanVersion(ctx.em, planKey, draftVersion);
  if (!draft) throw new Error('the draft just written cannot be read back');
  return draft;
}
