import { recordEvent } from '@billing/kit/outbox';
import { PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { planPublished } from '@billing/proto/events/catalog';
import { findPlan, savePlan } from '../adapter/plan-repository.ts';
import { findPlanVersion, setVersionStatus } from '../adapter/plan-version-repository.ts';
import { draftNoLongerValid, noDraft, planArchived, planNotFound } from '../domain/errors.ts';
import type { PlanVersion } from '../domain/types.ts';
import { validatePlanSpec } from '../domain/validate.ts';
import { loadCatalogLookup } from './catalog-lookup.ts';
import { eventContext, type WriteContext } from './context.ts';

/** Publishes a plan's draft as its newest immutable version; the previous one is superseded. */
export async function publishPlan(ctx: WriteContext, planKey: string): Promise<PlanVersion> {
  const plan = await findPlan(ctx.em, planKey, true);
  if (!plan) throw planNotFound(planKey);
  if (plan.status === PlanStatus.ARCHIVED) throw planArchived(planKey);
  if (plan.draftVersion === 0) throw noDraft(planKey);
  const draft = await findPlanVersion(ctx.em, planKey, plan.draftVersion);
  if (!draft?.spec) throw new Error(`plan ${planKey} points at a missing draft`);
  // Features and meters may have been archived since the draft was saved.
  const violations = validatePlanSpec(draft.spec, await loadCatalogLookup(ctx.em));
  if (violations.length > 0) throw draftNoLongerValid(violations);
  if (plan.latestVersion > 0) await setVersionStatus(ctx.em, planKey, plan.latestVersion, 'superseded');
  await setVersionStatus(ctx.em, planKey, draft.version, 'published', ctx.now);
  const published = { ...plan, latestVersion: draft.version, draftVersion: 0 };
  await savePlan(ctx.em, published, null, ctx.now);
  const version = await findPlanVersion(ctx.em, planKey, draft.version);
  const stored = await findPlan(ctx.em, planKey);
  if (!version || !stored) throw new Error('the version just published cannot be read back');
  await recordEvent(ctx.em, planPublished, { plan: stored, version }, eventContext(ctx, `plan:${planKey}`));
  return version;
}
