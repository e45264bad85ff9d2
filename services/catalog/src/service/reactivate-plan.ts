import { recordEvent } from '@billing/kit/outbox';
import { PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { planPublished } from '@billing/proto/events/catalog';
import { findPlan, savePlan } from '../adapter/plan-repository.ts';
import { findPlanVersion, setVersionStatus } from '../adapter/plan-version-repository.ts';
import { eventContext, type WriteContext } from './context.ts';

/**
 * Sells an archived plan again (a catalog document names it once more): its latest version is published
 * again and announced as such.
 */
export async function reactivatePlan(ctx: WriteContext, planKey: string): Promise<void> {
  const plan = await findPlan(ctx.em, planKey, true);
  if (!plan || plan.status !== PlanStatus.ARCHIVED) return;
  await savePlan(ctx.em, { ...plan, status: PlanStatus.ACTIVE }, null, ctx.now);
  if (plan.latestVersion === 0) return;
  await setVersionStatus(ctx.em, planKey, plan.latestVersion, 'published');
  const [stored, version] = [
    await findPlan(ctx.em, planKey),
    await findPlanVersion(ctx.em, planKey, plan.latestVersion),
  ];
  if (stored && version) {
    await recordEvent(ctx.em, planPublished, { plan: stored, version }, eventContext(ctx, `plan:${planKey}`));
  }
}
