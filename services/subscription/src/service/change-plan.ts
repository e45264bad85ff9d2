import { refuseViolations } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import {
  ProrationReason,
  ScheduledChangeKind,
  ScheduledChangeSchema,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { ChangeTiming } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { subscriptionChangeScheduled, subscriptionPlanChanged } from '@billing/proto/events/subscription';
import { create } from '@bufbuild/protobuf';
import { savePlanVersion } from '../adapter/plan-versions-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { intervalChangeAtPeriodEnd, invalidTransition } from '../domain/errors.ts';
import { assertState, isBilled, type SubscriptionChange } from '../domain/subscription.ts';
import { changedTerms } from '../domain/term-changes.ts';
import { assertSellable } from '../domain/terms.ts';
import { type ChangePlanInput, overrideViolations, quantityViolations, requireCharges } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requirePlanVersion, requireSubscription } from './lookups.ts';
import { changeItems, commitChange } from './prorated-changes.ts';
import { saveChange } from './subscription-writes.ts';

const S = SubscriptionState;

/** Moves a subscription to `version` (read from the catalog): now with proration, or at the period end. */
export async function changePlan(
  ctx: WriteContext,
  input: ChangePlanInput,
  version: PlanVersion,
): Promise<SubscriptionChange> {
  requireCharges(version, 'quantities', input.quantities);
  requireCharges(version, 'price_overrides', input.priceOverrides);
  refuseViolations(
    [
      ...quantityViolations(input.quantities, version, 'quantities'),
      ...overrideViolations(input.priceOverrides, version, 'price_overrides'),
    ],
    'the change is not valid',
  );
  const record = await requireSubscription(ctx.em, input.subscriptionId, true);
  const s = record.subscription;
  assertState(s, [S.PENDING, S.TRIALING, S.ACTIVE, S.PAST_DUE], 'change the plan of');
  assertSellable(version, s.currencyCode);
  await savePlanVersion(ctx.em, version);
  const terms = changedTerms(record, version, input);
  const now = await clockTime(ctx.em, record.testClockId, ctx.now);

  if (input.timing === ChangeTiming.PERIOD_END) {
    if (s.state === S.PENDING) {
      throw invalidTransition('a subscription that has not started changes immediately', s.id);
    }
    s.scheduledChange = create(ScheduledChangeSchema, {
      kind: ScheduledChangeKind.PLAN_CHANGE,
      applyTime: s.currentPeriod?.endTime,
      planKey: terms.planKey,
      planVersion: terms.planVersion,
      quantities: input.quantities,
      priceOverrides: input.priceOverrides,
    });
    await saveChange(ctx, record, now, subscriptionChangeScheduled, { subscription: s });
    return { record, prorationItems: [] };
  }

  const current = await requirePlanVersion(ctx.em, s.planKey, s.planVersion);
  if (isBilled(record) && current.spec?.interval !== version.spec?.interval) throw intervalChangeAtPeriodEnd();
  const previous = { planKey: s.planKey, planVersion: s.planVersion, quantities: s.quantities };
  const after = { terms, version, addonCharges: record.addonCharges };
  const items = await changeItems(ctx.em, record, after, now, ProrationReason.PLAN_CHANGE);
  s.scheduledChange = undefined;
  await commitChange(ctx, record, after, now, items);
  await recordEvent(
    ctx.em,
    subscriptionPlanChanged,
    {
      subscription: s,
      previousPlanKey: previous.planKey,
      previousPlanVersion: previous.planVersion,
      previousQuantities: previous.quantities,
      immediate: true,
      prorationItems: items,
    },
    eventContext(ctx, s.id, now),
  );
  return { record, prorationItems: items };
}
