import { recordEvent } from '@billing/kit/outbox';
import { PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { planArchived } from '@billing/proto/events/catalog';
import { findPlan, savePlan } from '../adapter/plan-repository.ts';
import { archivePublishedVersions } from '../adapter/plan-version-repository.ts';
import { planNotFound } from '../domain/errors.ts';
import type { Plan } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';

/** Archives a plan: no new subscriptions; existing ones keep their version. Archiving twice changes nothing. */
export async function archivePlan(ctx: WriteContext, planKey: string): Promise<Plan> {
  const plan = await findPlan(ctx.em, planKey, true);
  if (!plan) throw planNotFound(planKey);
  if (plan.status === PlanStatus.ARCHIVED) return plan;
  await savePlan(ctx.em, { ...plan, status: PlanStatus.ARCHIVED }, ctx.now, ctx.now);
  await archivePublishedVersions(ctx.em, planKey);
  const stored = await findPlan(ctx.em, planKey);
  if (!stored) throw new Error('the plan just archived cannot be read back');
  await recordEvent(ctx.em, planArchived, { plan: stored }, eventContext(ctx, `plan:${planKey}`));
  return stored;
}
